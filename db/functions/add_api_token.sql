-- add_api_token(p_token_name text, p_role text, p_secret_sha256 bytea,
--               p_actor text DEFAULT NULL) -> jsonb
--
-- Stores a named API token: p_token_name (lower case: a letter, then up to
-- 62 of a-z, 0-9, '_', '.', '-'; not 'default', the name of the single
-- PGFRAUD_API_TOKEN), p_role 'analyst' or 'owner', and the SHA-256 digest
-- of its secret (32 bytes; the caller makes the secret and shows it once:
-- `pgfraud token add`). Returns the token as get_api_tokens shows it
-- ({token_name, role, created_by, created_at, revoked_by, revoked_at}),
-- never the digest. The change is in the audit trail (without the digest).
-- Errors: PF001 (invalid_input) naming the field: token_name malformed,
-- 'default', or in use by a token that is not revoked; role not analyst or
-- owner; secret_sha256 not 32 bytes or already stored.
CREATE OR REPLACE FUNCTION add_api_token(
    p_token_name text,
    p_role text,
    p_secret_sha256 bytea,
    p_actor text DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_token api_tokens;
BEGIN
    IF p_token_name IS NULL OR p_token_name !~ '^[a-z][a-z0-9_.-]{0,62}$' THEN
        RAISE EXCEPTION 'token_name must start with a letter and have at most 63 of a-z, 0-9, _, . and -'
            USING ERRCODE = 'PF001', COLUMN = 'token_name';
    END IF;
    IF p_token_name = 'default' THEN
        RAISE EXCEPTION 'token_name default is the name of PGFRAUD_API_TOKEN; choose another'
            USING ERRCODE = 'PF001', COLUMN = 'token_name';
    END IF;
    IF p_role IS NULL OR p_role NOT IN ('analyst', 'owner') THEN
        RAISE EXCEPTION 'role must be analyst or owner' USING ERRCODE = 'PF001', COLUMN = 'role';
    END IF;
    IF p_secret_sha256 IS NULL OR octet_length(p_secret_sha256) <> 32 THEN
        RAISE EXCEPTION 'secret_sha256 must be the 32 bytes of a SHA-256 digest'
            USING ERRCODE = 'PF001', COLUMN = 'secret_sha256';
    END IF;
    -- One live token per name: two adds of one name at once queue here.
    PERFORM pg_advisory_xact_lock(hashtextextended('pgfraud api token ' || p_token_name, 0));
    IF EXISTS (SELECT FROM api_tokens AS t
               WHERE t.token_name = p_token_name AND t.revoked_at IS NULL) THEN
        RAISE EXCEPTION 'a token named % exists; revoke it first to give the name a new token', p_token_name
            USING ERRCODE = 'PF001', COLUMN = 'token_name';
    END IF;
    IF EXISTS (SELECT FROM api_tokens AS t WHERE t.secret_sha256 = p_secret_sha256) THEN
        RAISE EXCEPTION 'this secret is stored already; make a new one'
            USING ERRCODE = 'PF001', COLUMN = 'secret_sha256';
    END IF;
    INSERT INTO api_tokens AS t (token_name, role, secret_sha256, created_by)
    VALUES (p_token_name, p_role, p_secret_sha256, _actor(p_actor))
    RETURNING t.* INTO v_token;
    RETURN _token_json(v_token);
END;
$$;

COMMENT ON FUNCTION add_api_token(text, text, bytea, text) IS
    'Stores a named API token (name, role analyst or owner, SHA-256 digest of its secret); returns it without the digest; PF001 naming the field.';

REVOKE ALL ON FUNCTION add_api_token(text, text, bytea, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION add_api_token(text, text, bytea, text) TO pgfraud_app;
