-- get_api_tokens(p_include_revoked boolean DEFAULT false) -> jsonb
--
-- The named API tokens, never their secrets or digests: a JSON array of
-- {token_name, role, created_by, created_at, revoked_by, revoked_at}
-- (_token_json: times UTC with milliseconds and Z) in name order (then
-- newest first), only the live ones unless p_include_revoked. Raises
-- nothing.
CREATE OR REPLACE FUNCTION get_api_tokens(p_include_revoked boolean DEFAULT false)
RETURNS jsonb
-- (The row is rebuilt as api_tokens: on Citus a table's row in a query is
-- its shard's row type, which _token_json does not take.)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    SELECT coalesce(jsonb_agg(_token_json(ROW(t.*)::api_tokens) ORDER BY t.token_name, t.token_id DESC), '[]')
    FROM api_tokens AS t
    WHERE p_include_revoked OR t.revoked_at IS NULL;
$$;

COMMENT ON FUNCTION get_api_tokens(boolean) IS
    'The named API tokens without secrets: [{token_name, role, created_by, created_at, revoked_by, revoked_at}], live ones unless asked.';

REVOKE ALL ON FUNCTION get_api_tokens(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_api_tokens(boolean) TO pgfraud_app, pgfraud_readonly;
