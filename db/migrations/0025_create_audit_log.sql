-- 0025: the audit trail (issue 18, "Who did what").
--
--   audit_log: one row per change of an audited table, append-only, written
--       by the trigger function audit_change() (db/functions/audit_change.sql,
--       which also attaches it to rules, decision_policies, lists,
--       list_entries, reviews and api_tokens), so changes made in psql are
--       recorded as well as the service's and the CLI's. Each row says who
--       (actor: current_actor(), the pgfraud.actor setting, else the login),
--       when (at), what (action insert/update/delete, object_kind,
--       object_key) and the row before and after as JSON (secrets left out).
--       A rule change that re-scored the stored history also holds how many
--       alerts it added and removed (filled in by the re-scoring trigger in
--       the same database transaction; NULL when the change re-scored
--       nothing, such as a description).
-- Only the owner may delete rows (retention); nobody may rewrite one: the
-- service's and the read-only roles may only read it (SELECT), and the
-- trigger audit_log_append_only (db/functions/_refuse_audit_rewrite.sql)
-- refuses any UPDATE of a row written by an earlier database transaction,
-- the owner's included. A small shared table
-- (a reference table on Citus); its key is audit_id.

CREATE TABLE audit_log (
    audit_id bigint GENERATED ALWAYS AS IDENTITY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor text NOT NULL,
    action text NOT NULL,
    object_kind text NOT NULL,
    object_key text NOT NULL,
    before jsonb,
    after jsonb,
    alerts_added bigint,
    alerts_removed bigint,
    -- The database transaction that wrote the row: only it may still fill
    -- in alerts_added and alerts_removed.
    written_xact xid8 NOT NULL DEFAULT pg_current_xact_id(),
    CONSTRAINT audit_log_pkey PRIMARY KEY (audit_id),
    CONSTRAINT audit_log_action_check CHECK (action IN ('insert', 'update', 'delete')),
    CONSTRAINT audit_log_alerts_check CHECK (alerts_added >= 0 AND alerts_removed >= 0)
);

-- GET /audit and `pgfraud audit`: newest first, filtered by actor or kind.
CREATE INDEX audit_log_actor_idx ON audit_log (actor, audit_id);
CREATE INDEX audit_log_kind_idx ON audit_log (object_kind, audit_id);
CREATE INDEX audit_log_at_idx ON audit_log (at, audit_id);

COMMENT ON TABLE audit_log IS
    'Append-only audit trail: who changed which object when, the row before and after (no secrets), and the alerts a re-scoring rule change added and removed.';

REVOKE ALL ON audit_log FROM PUBLIC;
GRANT SELECT ON audit_log TO pgfraud_app, pgfraud_readonly;
