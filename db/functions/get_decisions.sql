-- get_decisions(p_outcome text DEFAULT NULL, p_account_id bigint DEFAULT NULL,
--               p_from timestamptz DEFAULT NULL, p_to timestamptz DEFAULT NULL,
--               p_before_ts timestamptz DEFAULT NULL,
--               p_before_transaction_id bigint DEFAULT NULL,
--               p_limit integer DEFAULT 100) -> SETOF jsonb
--
-- Decisions, newest transaction time first ((ts, transaction_id)
-- descending), each as _decision_json. Filters (NULL: any): p_outcome
-- (approve, review, decline), p_account_id, transaction time in [p_from,
-- p_to). Paging: rows strictly before (p_before_ts,
-- p_before_transaction_id), the last row of the previous page; p_limit
-- 1..10000 rows (the API pages by at most 1,000 and asks one more).
-- Errors: PF001 (invalid_input) naming outcome or limit.
CREATE OR REPLACE FUNCTION get_decisions(
    p_outcome text DEFAULT NULL,
    p_account_id bigint DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_before_ts timestamptz DEFAULT NULL,
    p_before_transaction_id bigint DEFAULT NULL,
    p_limit integer DEFAULT 100
)
RETURNS SETOF jsonb
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    IF p_outcome IS NOT NULL AND p_outcome NOT IN ('approve', 'review', 'decline') THEN
        RAISE EXCEPTION 'outcome must be approve, review or decline'
            USING ERRCODE = 'PF001', COLUMN = 'outcome';
    END IF;
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'limit must be from 1 to 10000' USING ERRCODE = 'PF001', COLUMN = 'limit';
    END IF;
    -- The page's rows first, then each as JSON: on Citus the rows come from
    -- the shards and _decision_json runs on the coordinator (called on a
    -- shard, it is asked for the shard's row type, which it does not take).
    RETURN QUERY
        WITH page AS MATERIALIZED (
            SELECT d.*
            FROM decisions AS d
            WHERE (p_outcome IS NULL OR d.outcome = p_outcome)
              AND (p_account_id IS NULL OR d.account_id = p_account_id)
              AND (p_from IS NULL OR d.ts >= p_from)
              AND (p_to IS NULL OR d.ts < p_to)
              AND (p_before_ts IS NULL
                   OR (d.ts, d.transaction_id) < (p_before_ts, coalesce(p_before_transaction_id, 0)))
            ORDER BY d.ts DESC, d.transaction_id DESC
            LIMIT p_limit
        )
        SELECT _decision_json(ROW(p.*)::decisions)
        FROM page AS p
        ORDER BY p.ts DESC, p.transaction_id DESC;
END;
$$;

COMMENT ON FUNCTION get_decisions(text, bigint, timestamptz, timestamptz, timestamptz, bigint, integer) IS
    'Decisions newest first, filtered by outcome, account and transaction time [from, to), paged before (ts, transaction_id); PF001 naming outcome or limit.';

REVOKE ALL ON FUNCTION get_decisions(text, bigint, timestamptz, timestamptz, timestamptz, bigint, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_decisions(text, bigint, timestamptz, timestamptz, timestamptz, bigint, integer)
    TO pgfraud_app, pgfraud_readonly;
