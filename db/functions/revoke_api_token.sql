-- revoke_api_token(p_token_name text, p_actor text DEFAULT NULL) -> jsonb
--
-- Revokes the live token named p_token_name from now: it is kept, with
-- revoked_at and revoked_by, and no longer lets anyone in (the service
-- reads the live tokens again within PGFRAUD_TOKEN_CACHE_S seconds).
-- Returns the token as get_api_tokens shows it. The change is in the audit
-- trail. Errors: PF001 (invalid_input, COLUMN token_name) when no live
-- token has that name (never made, or revoked already).
CREATE OR REPLACE FUNCTION revoke_api_token(p_token_name text, p_actor text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_token api_tokens;
    -- Read before the UPDATE: Citus refuses a volatile call in an UPDATE
    -- of a reference table.
    v_revoked_at timestamptz := clock_timestamp();
    v_revoked_by text := _actor(p_actor);
BEGIN
    UPDATE api_tokens AS t
    SET revoked_at = v_revoked_at, revoked_by = v_revoked_by
    WHERE t.token_name = p_token_name AND t.revoked_at IS NULL
    RETURNING t.* INTO v_token;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no token named % (that is not revoked already)', coalesce(p_token_name, 'NULL')
            USING ERRCODE = 'PF001', COLUMN = 'token_name';
    END IF;
    RETURN _token_json(v_token);
END;
$$;

COMMENT ON FUNCTION revoke_api_token(text, text) IS
    'Revokes the live token of this name (kept, with revoked_at and revoked_by); PF001 (token_name) when there is none.';

REVOKE ALL ON FUNCTION revoke_api_token(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION revoke_api_token(text, text) TO pgfraud_app;
