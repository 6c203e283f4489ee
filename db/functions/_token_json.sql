-- _token_json(p_token api_tokens) -> jsonb
--
-- A named token as get_api_tokens, add_api_token and revoke_api_token show
-- it, never its secret's digest: {token_name, role, created_by, created_at,
-- revoked_by, revoked_at}; times ISO 8601 UTC with milliseconds and Z, as
-- every other time pgfraud shows (revoked_by and revoked_at null while the
-- token is live). Raises nothing.
CREATE OR REPLACE FUNCTION _token_json(p_token api_tokens)
RETURNS jsonb
LANGUAGE sql
STABLE
AS $$
    SELECT jsonb_build_object(
        'token_name', p_token.token_name,
        'role', p_token.role,
        'created_by', p_token.created_by,
        'created_at', to_char(p_token.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'revoked_by', p_token.revoked_by,
        'revoked_at', to_char(p_token.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
$$;

COMMENT ON FUNCTION _token_json(api_tokens) IS
    'A named token as JSON without its digest: token_name, role, created_by/at, revoked_by/at (times UTC, milliseconds, Z).';

REVOKE ALL ON FUNCTION _token_json(api_tokens) FROM PUBLIC;
