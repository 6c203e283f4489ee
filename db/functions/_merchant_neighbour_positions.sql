-- _merchant_neighbour_positions(p_merchant_ids bigint[], p_after_ts timestamptz[])
--     -> TABLE (account_id bigint, from_ts timestamptz, from_transaction_id bigint,
--               until_ts timestamptz, until_transaction_id bigint)
--
-- The rows whose verdict a change at a merchant can change: for each pair i,
-- a change at merchant p_merchant_ids[i] known at p_after_ts[i] (a row
-- stored, removed or changed there at that time; a label or review of a
-- transaction there, known then) is read only by that merchant's rows with
-- time after p_after_ts[i] + _merchant_rules_delay() and at most the rules'
-- reach after it: a row at ts reads the merchant's rows with time in
-- [ts - reach, ts), reach being compromised_merchant's window_days (when
-- on) or 888 hours (when a live user's rule reads the merchant features:
-- merchant_surge_7d's base reaches 37 days back),
-- the greater, as _evaluate_from's merchant_reach; p_after_ts[i] is never
-- before the changed row's own time, so no row that reads it is left out.
-- Returns, per account with such rows, its earliest one (from_ts,
-- from_transaction_id) and its latest one (until_ts, until_transaction_id):
-- _rescore_accounts re-scores it from the one to the other, as its rows
-- after the latest read nothing the change touched (its own rows did not
-- change, and the merchant's rows they read are all after the change's
-- reach). (Without the upper bound, one row stored a year late at a busy
-- merchant re-scored every account that paid there in the whole year after
-- it; without the until position, each such account was re-scored to its
-- end, however much later its rows.)
-- No rows when no live rule reads the merchants (the delay is NULL).
-- Raises nothing; NULL arrays mean none.
CREATE OR REPLACE FUNCTION _merchant_neighbour_positions(
    p_merchant_ids bigint[],
    p_after_ts timestamptz[]
)
RETURNS TABLE (account_id bigint, from_ts timestamptz, from_transaction_id bigint,
               until_ts timestamptz, until_transaction_id bigint)
LANGUAGE sql
STABLE
AS $$
    WITH delay AS (
        SELECT _merchant_rules_delay() AS delay,
               -- How far after a change the rules read it (NULL parts ignored).
               greatest(
                   (SELECT make_interval(secs => coalesce(
                               (r.parameters ->> 'window_days')::double precision, 0) * 86400)
                    FROM rules AS r
                    WHERE r.rule_id = 'compromised_merchant' AND r.enabled),
                   (SELECT interval '888 hours'
                    WHERE EXISTS (SELECT FROM rules AS r
                                  WHERE r.enabled AND r.expression IS NOT NULL
                                    AND _reads_merchant_features(r.expression))),
                   -- Shadow rules (issue 18) too.
                   (SELECT make_interval(secs => coalesce(
                               (s.parameters ->> 'window_days')::double precision, 0) * 86400)
                    FROM shadow_rules AS s
                    WHERE s.rule_id = 'compromised_merchant'),
                   (SELECT interval '888 hours'
                    WHERE EXISTS (SELECT FROM shadow_rules AS s
                                  JOIN rules AS r ON r.rule_id = s.rule_id
                                  WHERE r.expression IS NOT NULL
                                    AND _reads_merchant_features(r.expression)))
               ) AS reach
    ),
    changes AS (
        SELECT c.merchant_id, min(c.after_ts) + d.delay AS after_ts,
               max(c.after_ts) + d.reach AS until_ts
        FROM unnest(p_merchant_ids, p_after_ts) AS c(merchant_id, after_ts)
        CROSS JOIN delay AS d
        WHERE c.merchant_id IS NOT NULL AND d.delay IS NOT NULL
        GROUP BY c.merchant_id, d.delay, d.reach
    )
    SELECT DISTINCT ON (t.account_id) t.account_id, t.ts, t.transaction_id,
           last_value(t.ts) OVER account_rows, last_value(t.transaction_id) OVER account_rows
    FROM changes AS c
    JOIN transactions AS t
      ON t.merchant_id = c.merchant_id AND t.ts > c.after_ts AND t.ts <= c.until_ts
    WINDOW account_rows AS (PARTITION BY t.account_id ORDER BY t.ts, t.transaction_id
                            ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    ORDER BY t.account_id, t.ts, t.transaction_id;
$$;

COMMENT ON FUNCTION _merchant_neighbour_positions(bigint[], timestamptz[]) IS
    'Per account, its earliest and latest rows whose verdict a change at the given merchants (known at the given times) can change.';

REVOKE ALL ON FUNCTION _merchant_neighbour_positions(bigint[], timestamptz[]) FROM PUBLIC;
