-- 0003: least-privilege roles.
--
-- pgfraud_app: what the service needs (store and read transactions, run the
-- rules); no DDL, no UPDATE or DELETE. pgfraud_readonly: analysts, read only.
-- Login users join one of them (create_app_user). Roles are cluster-wide, so
-- they are created only when missing.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgfraud_app') THEN
        CREATE ROLE pgfraud_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgfraud_readonly') THEN
        CREATE ROLE pgfraud_readonly NOLOGIN;
    END IF;
END
$$;

-- Functions are not executable by PUBLIC; each function file grants explicitly.
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

GRANT USAGE ON SCHEMA public TO pgfraud_app, pgfraud_readonly;
GRANT SELECT, INSERT ON transactions TO pgfraud_app;
GRANT SELECT ON rules, schema_migrations TO pgfraud_app;
GRANT SELECT ON transactions, rules TO pgfraud_readonly;
