-- get_api_token_digests() -> TABLE (token_name text, role text, secret_sha256 bytea)
--
-- What the service checks a bearer token against: the name, role and
-- SHA-256 digest of each live (not revoked) named token. Granted to the
-- service's role only (the read-only role sees tokens through
-- get_api_tokens, without digests). Raises nothing.
CREATE OR REPLACE FUNCTION get_api_token_digests()
RETURNS TABLE (token_name text, role text, secret_sha256 bytea)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    SELECT t.token_name, t.role, t.secret_sha256
    FROM api_tokens AS t
    WHERE t.revoked_at IS NULL
    ORDER BY t.token_name;
$$;

COMMENT ON FUNCTION get_api_token_digests() IS
    'The live named tokens'' name, role and SHA-256 digest, for the service to check bearer tokens against.';

REVOKE ALL ON FUNCTION get_api_token_digests() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_api_token_digests() TO pgfraud_app;
