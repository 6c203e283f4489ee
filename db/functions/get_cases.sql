-- get_cases(p_status text DEFAULT NULL, p_assignee text DEFAULT NULL,
--           p_account_id bigint DEFAULT NULL, p_before_case_id bigint DEFAULT NULL,
--           p_limit integer DEFAULT 100) -> SETOF jsonb
--
-- Cases, newest first (case_id descending), each as _case_json. Filters
-- (NULL: any): p_status (open, assigned, closed, or active: open or
-- assigned, the cases still to work), p_assignee (exact name),
-- p_account_id. Paging: cases with case_id below p_before_case_id (the last
-- case of the previous page); p_limit 1..10000 (the API pages by at most
-- 1,000 and asks one more). Errors: PF001 (invalid_input) naming status or
-- limit.
CREATE OR REPLACE FUNCTION get_cases(
    p_status text DEFAULT NULL,
    p_assignee text DEFAULT NULL,
    p_account_id bigint DEFAULT NULL,
    p_before_case_id bigint DEFAULT NULL,
    p_limit integer DEFAULT 100
)
RETURNS SETOF jsonb
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    IF p_status IS NOT NULL AND p_status NOT IN ('open', 'assigned', 'closed', 'active') THEN
        RAISE EXCEPTION 'status must be open, assigned, closed or active'
            USING ERRCODE = 'PF001', COLUMN = 'status';
    END IF;
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'limit must be from 1 to 10000' USING ERRCODE = 'PF001', COLUMN = 'limit';
    END IF;
    -- The page's rows first, then each as JSON: on Citus the rows come from
    -- the shards and _case_json runs on the coordinator (called on a shard,
    -- it is asked for the shard's row type, which it does not take).
    RETURN QUERY
        WITH page AS MATERIALIZED (
            SELECT c.*
            FROM cases AS c
            WHERE (p_status IS NULL OR c.status = p_status
                   OR (p_status = 'active' AND c.status <> 'closed'))
              AND (p_assignee IS NULL OR c.assignee = p_assignee)
              AND (p_account_id IS NULL OR c.account_id = p_account_id)
              AND (p_before_case_id IS NULL OR c.case_id < p_before_case_id)
            ORDER BY c.case_id DESC
            LIMIT p_limit
        )
        SELECT _case_json(ROW(p.*)::cases)
        FROM page AS p
        ORDER BY p.case_id DESC;
END;
$$;

COMMENT ON FUNCTION get_cases(text, text, bigint, bigint, integer) IS
    'Cases newest first, filtered by status, assignee and account, paged before a case_id; PF001 naming status or limit.';

REVOKE ALL ON FUNCTION get_cases(text, text, bigint, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_cases(text, text, bigint, bigint, integer)
    TO pgfraud_app, pgfraud_readonly;
