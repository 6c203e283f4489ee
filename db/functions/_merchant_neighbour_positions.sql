-- _merchant_neighbour_positions(p_merchant_ids bigint[], p_after_ts timestamptz[])
--     -> TABLE (account_id bigint, from_ts timestamptz, from_transaction_id bigint)
--
-- The rows whose verdict a change at a merchant can change: for each pair i,
-- a change at merchant p_merchant_ids[i] known at p_after_ts[i] (a row
-- stored, removed or changed there at that time; a label or review of a
-- transaction there, known then) is read only by that merchant's rows with
-- time after p_after_ts[i] + _merchant_rules_delay(). Returns, per account
-- with such rows, its earliest one (ts, transaction_id): the position from
-- which _rescore_accounts re-scores it. No rows when no live rule reads the
-- merchants (the delay is NULL). Raises nothing; NULL arrays mean none.
CREATE OR REPLACE FUNCTION _merchant_neighbour_positions(
    p_merchant_ids bigint[],
    p_after_ts timestamptz[]
)
RETURNS TABLE (account_id bigint, from_ts timestamptz, from_transaction_id bigint)
LANGUAGE sql
STABLE
AS $$
    WITH delay AS (
        SELECT _merchant_rules_delay() AS delay
    ),
    changes AS (
        SELECT c.merchant_id, min(c.after_ts) + d.delay AS after_ts
        FROM unnest(p_merchant_ids, p_after_ts) AS c(merchant_id, after_ts)
        CROSS JOIN delay AS d
        WHERE c.merchant_id IS NOT NULL AND d.delay IS NOT NULL
        GROUP BY c.merchant_id, d.delay
    )
    SELECT DISTINCT ON (t.account_id) t.account_id, t.ts, t.transaction_id
    FROM changes AS c
    JOIN transactions AS t ON t.merchant_id = c.merchant_id AND t.ts > c.after_ts
    ORDER BY t.account_id, t.ts, t.transaction_id;
$$;

COMMENT ON FUNCTION _merchant_neighbour_positions(bigint[], timestamptz[]) IS
    'Per account, its earliest row whose verdict a change at the given merchants (known at the given times) can change.';

REVOKE ALL ON FUNCTION _merchant_neighbour_positions(bigint[], timestamptz[]) FROM PUBLIC;
