-- get_account_transactions(p_account_id bigint, p_limit integer) -> SETOF transactions
--
-- One account's latest transactions, newest first (at most p_limit rows,
-- 1..10000). Errors: PF002 (account_not_found) when the account has no
-- transactions; PF001 (invalid_input) for a limit out of range.
CREATE OR REPLACE FUNCTION get_account_transactions(p_account_id bigint, p_limit integer DEFAULT 100)
RETURNS SETOF transactions
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 10000' USING ERRCODE = 'PF001', COLUMN = 'limit';
    END IF;
    RETURN QUERY
        SELECT t.*
        FROM transactions AS t
        WHERE t.account_id = p_account_id
        ORDER BY t.ts DESC, t.transaction_id DESC
        LIMIT p_limit;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account % has no transactions', p_account_id
            USING ERRCODE = 'PF002', COLUMN = 'account_id';
    END IF;
END;
$$;

COMMENT ON FUNCTION get_account_transactions(bigint, integer) IS
    'One account''s latest transactions, newest first; raises PF002 if it has none, PF001 for a limit outside 1..10000.';

REVOKE ALL ON FUNCTION get_account_transactions(bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_account_transactions(bigint, integer) TO pgfraud_app, pgfraud_readonly;
