-- get_account_reviews(p_account_id bigint, p_limit integer)
--     -> TABLE (review_id bigint, transaction_id bigint, account_id bigint,
--               status text, note text, reviewer text, reviewed_at timestamptz)
--
-- The review history of one account, newest first: every decision analysts
-- made on its transactions (earlier decisions included, not only the latest
-- per transaction), at most p_limit (1..10000). An account without reviews
-- gives no rows. Errors: PF001 (invalid_input) for a limit out of range.
CREATE OR REPLACE FUNCTION get_account_reviews(p_account_id bigint, p_limit integer DEFAULT 100)
RETURNS TABLE (
    review_id bigint,
    transaction_id bigint,
    account_id bigint,
    status text,
    note text,
    reviewer text,
    reviewed_at timestamptz
)
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 10000' USING ERRCODE = 'PF001', COLUMN = 'limit';
    END IF;
    RETURN QUERY
        SELECT rv.review_id, rv.transaction_id, rv.account_id, rv.status, rv.note,
               rv.reviewer, rv.reviewed_at
        FROM reviews AS rv
        WHERE rv.account_id = p_account_id
        ORDER BY rv.review_id DESC
        LIMIT p_limit;
END;
$$;

COMMENT ON FUNCTION get_account_reviews(bigint, integer) IS
    'The review history of one account, newest first (every decision); PF001 for a limit outside 1..10000.';

REVOKE ALL ON FUNCTION get_account_reviews(bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_account_reviews(bigint, integer) TO pgfraud_app, pgfraud_readonly;
