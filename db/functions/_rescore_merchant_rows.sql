-- _rescore_merchant_rows(p_merchant_ids bigint[], p_after_ts timestamptz[]) -> bigint
--
-- Keeps alerts exact when what the merchant rules (compromised_merchant, the
-- users' merchant features) read about a merchant changes outside a row's
-- own account: a label or review of one of its transactions, known at
-- p_after_ts[i] (the later of the transaction's time and the label's
-- known_at or the review's reviewed_at). Each account with rows that can
-- read it (_merchant_neighbour_positions: after that time plus the rules'
-- delay, up to its reach) is re-scored from its earliest such row to its
-- latest (_rescore_accounts, no
-- change to its totals: its account_states row is locked, in account_id
-- order with the others, before its alerts are touched). A label or review
-- recorded after a transaction's time thus never re-scores that transaction.
-- Does nothing when no such rule is live. Returns the number of new alerts.
-- Arrays have equal lengths; NULL arrays mean none. Raises nothing itself.
CREATE OR REPLACE FUNCTION _rescore_merchant_rows(
    p_merchant_ids bigint[],
    p_after_ts timestamptz[]
)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_account_ids bigint[];
    v_from_ts timestamptz[];
    v_from_transaction_ids bigint[];
    v_until_ts timestamptz[];
    v_until_transaction_ids bigint[];
BEGIN
    IF coalesce(cardinality(p_merchant_ids), 0) = 0 THEN
        RETURN 0;
    END IF;
    SELECT array_agg(n.account_id ORDER BY n.account_id),
           array_agg(n.from_ts ORDER BY n.account_id),
           array_agg(n.from_transaction_id ORDER BY n.account_id),
           array_agg(n.until_ts ORDER BY n.account_id),
           array_agg(n.until_transaction_id ORDER BY n.account_id)
    INTO v_account_ids, v_from_ts, v_from_transaction_ids, v_until_ts, v_until_transaction_ids
    FROM _merchant_neighbour_positions(p_merchant_ids, p_after_ts) AS n;
    IF v_account_ids IS NULL THEN
        RETURN 0;
    END IF;
    RETURN _rescore_accounts(
        v_account_ids, v_from_ts, v_from_transaction_ids,
        array_fill(0::bigint, ARRAY[cardinality(v_account_ids)]),
        array_fill(0::numeric, ARRAY[cardinality(v_account_ids)]),
        v_until_ts, v_until_transaction_ids
    );
END;
$$;

COMMENT ON FUNCTION _rescore_merchant_rows(bigint[], timestamptz[]) IS
    'Re-scores the accounts with rows that can read a change at the given merchants known at the given times (labels, reviews); returns the number of new alerts.';

REVOKE ALL ON FUNCTION _rescore_merchant_rows(bigint[], timestamptz[]) FROM PUBLIC;
