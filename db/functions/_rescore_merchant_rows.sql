-- _rescore_merchant_rows(p_merchant_ids bigint[], p_after_ts timestamptz[],
--                        p_skip_account_ids bigint[], p_skip_from_ts timestamptz[],
--                        p_skip_from_transaction_ids bigint[]) -> bigint
--
-- Keeps alerts exact when what compromised_merchant reads about a merchant
-- changes outside the row's own account: a transaction of another account
-- stored, removed or changed at the merchant, or a label or review of one.
-- For each pair i, every stored row at merchant p_merchant_ids[i] with time
-- after p_after_ts[i] may now read another count or share: its account is
-- re-scored (_rescore_accounts, no change to its totals) from its earliest
-- such row. Rows at or after (p_skip_from_ts[j], p_skip_from_transaction_ids[j])
-- of account p_skip_account_ids[j] are left out (the caller's statement
-- re-scored them already). Does nothing when compromised_merchant is not
-- enabled (its result is then never read). Returns the number of new alerts.
-- Arrays of one call have equal lengths; NULL arrays mean none.
CREATE OR REPLACE FUNCTION _rescore_merchant_rows(
    p_merchant_ids bigint[],
    p_after_ts timestamptz[],
    p_skip_account_ids bigint[] DEFAULT NULL,
    p_skip_from_ts timestamptz[] DEFAULT NULL,
    p_skip_from_transaction_ids bigint[] DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_account_ids bigint[];
    v_from_ts timestamptz[];
    v_from_transaction_ids bigint[];
BEGIN
    IF NOT EXISTS (SELECT FROM rules AS r WHERE r.rule_id = 'compromised_merchant' AND r.enabled)
       OR coalesce(cardinality(p_merchant_ids), 0) = 0 THEN
        RETURN 0;
    END IF;
    WITH changes AS (
        SELECT c.merchant_id, min(c.after_ts) AS after_ts
        FROM unnest(p_merchant_ids, p_after_ts) AS c(merchant_id, after_ts)
        WHERE c.merchant_id IS NOT NULL
        GROUP BY c.merchant_id
    ),
    skips AS (
        SELECT k.account_id, k.from_ts, k.from_transaction_id
        FROM unnest(coalesce(p_skip_account_ids, '{}'), coalesce(p_skip_from_ts, '{}'),
                    coalesce(p_skip_from_transaction_ids, '{}'))
            AS k(account_id, from_ts, from_transaction_id)
    ),
    affected AS (
        SELECT DISTINCT ON (t.account_id) t.account_id, t.ts, t.transaction_id
        FROM changes AS c
        JOIN transactions AS t ON t.merchant_id = c.merchant_id AND t.ts > c.after_ts
        LEFT JOIN skips AS k ON k.account_id = t.account_id
        WHERE k.account_id IS NULL
           OR (t.ts, t.transaction_id) < (k.from_ts, k.from_transaction_id)
        ORDER BY t.account_id, t.ts, t.transaction_id
    )
    SELECT array_agg(a.account_id ORDER BY a.account_id),
           array_agg(a.ts ORDER BY a.account_id),
           array_agg(a.transaction_id ORDER BY a.account_id)
    INTO v_account_ids, v_from_ts, v_from_transaction_ids
    FROM affected AS a;
    IF v_account_ids IS NULL THEN
        RETURN 0;
    END IF;
    RETURN _rescore_accounts(
        v_account_ids, v_from_ts, v_from_transaction_ids,
        array_fill(0::bigint, ARRAY[cardinality(v_account_ids)]),
        array_fill(0::numeric, ARRAY[cardinality(v_account_ids)])
    );
END;
$$;

COMMENT ON FUNCTION _rescore_merchant_rows(bigint[], timestamptz[], bigint[], timestamptz[], bigint[]) IS
    'Re-scores the accounts with rows at the given merchants after the given times (what compromised_merchant reads changed); returns the number of new alerts.';

REVOKE ALL ON FUNCTION _rescore_merchant_rows(bigint[], timestamptz[], bigint[], timestamptz[], bigint[]) FROM PUBLIC;
