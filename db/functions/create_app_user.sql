-- create_app_user(p_user_name text, p_password text, p_read_only boolean) -> text
--
-- Creates a login role for the service (member of pgfraud_app) or, with
-- p_read_only, for analysts (member of pgfraud_readonly); an existing role
-- gets the new password and membership. Returns the role name. Needs
-- CREATEROLE: run it as the database owner, never as the service.
-- Errors: PF001 (invalid_input) for an empty name or a password shorter than
-- 12 characters.
CREATE OR REPLACE FUNCTION create_app_user(
    p_user_name text,
    p_password text,
    p_read_only boolean DEFAULT false
)
RETURNS text
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_group text := CASE WHEN p_read_only THEN 'pgfraud_readonly' ELSE 'pgfraud_app' END;
BEGIN
    IF p_user_name IS NULL OR p_user_name !~ '^[a-z_][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'user name must be 1-63 lower-case letters, digits or _'
            USING ERRCODE = 'PF001', COLUMN = 'user_name';
    END IF;
    IF p_password IS NULL OR length(p_password) < 12 THEN
        RAISE EXCEPTION 'password must be at least 12 characters' USING ERRCODE = 'PF001', COLUMN = 'password';
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = p_user_name) THEN
        EXECUTE format('ALTER ROLE %I WITH LOGIN PASSWORD %L', p_user_name, p_password);
    ELSE
        EXECUTE format('CREATE ROLE %I WITH LOGIN PASSWORD %L', p_user_name, p_password);
    END IF;
    EXECUTE format('GRANT %I TO %I', v_group, p_user_name);
    EXECUTE format('ALTER ROLE %I SET statement_timeout = %L', p_user_name, '30s');
    RETURN p_user_name;
END;
$$;

COMMENT ON FUNCTION create_app_user(text, text, boolean) IS
    'Creates (or updates) a login role in pgfraud_app, or pgfraud_readonly with p_read_only; raises PF001 for a bad name or a short password.';

REVOKE ALL ON FUNCTION create_app_user(text, text, boolean) FROM PUBLIC;
