-- get_api_token_digests() -> TABLE (token_name text, role text, secret_sha256 bytea)
--
-- What the service checks a bearer token against: the name, role and
-- SHA-256 digest of each live named token; a revoked token is a row with
-- a NULL digest, so the service knows that named tokens are in use (and
-- keeps asking for one) after the last live one is revoked. Granted to the
-- service's role only (the read-only role sees tokens through
-- get_api_tokens, without digests). Raises nothing.
CREATE OR REPLACE FUNCTION get_api_token_digests()
RETURNS TABLE (token_name text, role text, secret_sha256 bytea)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    SELECT t.token_name, t.role, CASE WHEN t.revoked_at IS NULL THEN t.secret_sha256 END
    FROM api_tokens AS t
    ORDER BY t.token_name, t.token_id;
$$;

COMMENT ON FUNCTION get_api_token_digests() IS
    'Every named token''s name, role and SHA-256 digest (NULL once revoked), for the service to check bearer tokens against.';

REVOKE ALL ON FUNCTION get_api_token_digests() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_api_token_digests() TO pgfraud_app;
