-- score_merchant_neighbours() -> trigger
--
-- Statement-level trigger on `transactions`, fired after
-- score_changed_transactions (trigger names sort after it): a row stored,
-- removed or changed at a merchant changes what compromised_merchant reads
-- for the merchant's LATER rows of other accounts (its count of the
-- merchant's recent transactions and, when labelled, of known fraud). Those
-- rows are re-scored by _rescore_merchant_rows; rows of the statement's own
-- accounts from their earliest changed position on were re-scored already.
-- In-order arrivals have no later rows: one index probe per merchant.
-- SECURITY DEFINER, fixed search_path (as score_changed_transactions).
CREATE OR REPLACE FUNCTION score_merchant_neighbours()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_changed text;
    v_merchant_ids bigint[];
    v_after_ts timestamptz[];
    v_account_ids bigint[];
    v_from_ts timestamptz[];
    v_from_transaction_ids bigint[];
BEGIN
    IF NOT EXISTS (SELECT FROM rules AS r WHERE r.rule_id = 'compromised_merchant' AND r.enabled) THEN
        RETURN NULL;
    END IF;
    v_changed := CASE TG_OP
        WHEN 'INSERT' THEN
            'SELECT n.account_id, n.ts, n.transaction_id, n.merchant_id FROM new_rows AS n'
        WHEN 'DELETE' THEN
            'SELECT o.account_id, o.ts, o.transaction_id, o.merchant_id FROM old_rows AS o'
        ELSE
            'SELECT o.account_id, o.ts, o.transaction_id, o.merchant_id FROM old_rows AS o'
            ' UNION ALL '
            'SELECT n.account_id, n.ts, n.transaction_id, n.merchant_id FROM new_rows AS n'
    END;
    EXECUTE format($query$
        WITH changed AS (%s),
        merchants AS (
            SELECT c.merchant_id, min(c.ts) AS after_ts
            FROM changed AS c
            WHERE c.merchant_id IS NOT NULL
            GROUP BY c.merchant_id
        ),
        firsts AS (
            SELECT DISTINCT ON (c.account_id) c.account_id, c.ts, c.transaction_id
            FROM changed AS c
            ORDER BY c.account_id, c.ts, c.transaction_id
        )
        SELECT (SELECT array_agg(m.merchant_id) FROM merchants AS m),
               (SELECT array_agg(m.after_ts) FROM merchants AS m),
               (SELECT array_agg(f.account_id) FROM firsts AS f),
               (SELECT array_agg(f.ts) FROM firsts AS f),
               (SELECT array_agg(f.transaction_id) FROM firsts AS f)
    $query$, v_changed)
    INTO v_merchant_ids, v_after_ts, v_account_ids, v_from_ts, v_from_transaction_ids;
    PERFORM _rescore_merchant_rows(v_merchant_ids, v_after_ts, v_account_ids, v_from_ts,
                                   v_from_transaction_ids);
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION score_merchant_neighbours() IS
    'Trigger: re-scores other accounts'' later rows at the merchants a statement changed (compromised_merchant reads them).';

REVOKE ALL ON FUNCTION score_merchant_neighbours() FROM PUBLIC;

-- Named to sort after the transactions_score_* triggers (fired in name order).
CREATE OR REPLACE TRIGGER transactions_then_merchants_inserted
    AFTER INSERT ON transactions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION score_merchant_neighbours();

CREATE OR REPLACE TRIGGER transactions_then_merchants_deleted
    AFTER DELETE ON transactions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION score_merchant_neighbours();

CREATE OR REPLACE TRIGGER transactions_then_merchants_updated
    AFTER UPDATE ON transactions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION score_merchant_neighbours();
