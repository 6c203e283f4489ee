-- check_health() -> TABLE (server_version text, migrations bigint)
--
-- What GET /health reports: the server's version and how many migrations are
-- applied. Written in PL/pgSQL, as the rules are, so that it fails exactly
-- when pgfraud's functions fail: a server whose plpgsql library cannot be
-- loaded (say, after a package upgrade under a running server) is not
-- healthy, although plain SQL still answers. Raises nothing of its own.
CREATE OR REPLACE FUNCTION check_health()
RETURNS TABLE (server_version text, migrations bigint)
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    RETURN QUERY
        SELECT current_setting('server_version'),
               (SELECT count(*) FROM schema_migrations AS m);
END;
$$;

COMMENT ON FUNCTION check_health() IS
    'The server version and migrations applied, for GET /health; PL/pgSQL so that it fails when pgfraud''s functions cannot run.';

REVOKE ALL ON FUNCTION check_health() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION check_health() TO pgfraud_app, pgfraud_readonly;
