-- 0013: what `pgfraud migrate` last applied of the function files, so that
-- every other command can tell, reading only, whether the database is behind
-- the installed pgfraud (pgfraud.db.migrate.pending) and migrate with nothing
-- to do can return without a lock or a statement of DDL.
--
-- One row: file_digests, {file name: sha256 of its text} of db/functions as
-- applied; functions_fingerprint, md5 of the code of every function in the
-- schema right after (pg_get_functiondef, as migrate's FUNCTIONS_FINGERPRINT,
-- leaving out _custom_rule_events, which users' rules regenerate). A changed
-- file, or a function changed, added or dropped by hand, shows as a
-- difference.
CREATE TABLE schema_code (
    schema_code_id boolean NOT NULL DEFAULT true
        CONSTRAINT schema_code_pkey PRIMARY KEY
        CONSTRAINT schema_code_one_row CHECK (schema_code_id),
    file_digests jsonb NOT NULL,
    functions_fingerprint text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT ON schema_code TO pgfraud_app, pgfraud_readonly;
GRANT SELECT ON schema_migrations TO pgfraud_readonly;
