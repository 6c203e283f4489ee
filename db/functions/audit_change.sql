-- audit_change() -> trigger
--
-- The audit trail's one writer: attach it to a table and every row that an
-- INSERT, UPDATE or DELETE changes there, from any path (the service, the
-- CLI, psql), gets one row in audit_log in the same database transaction:
--   at           clock_timestamp() of the change;
--   actor        current_actor() (the pgfraud.actor setting, else the login);
--   action       'insert', 'update' or 'delete' (TG_OP), or the action a
--                function names for its statement in the transaction-local
--                setting pgfraud.audit_action ('promote', 'drop': a shadow
--                rule's end, which deletes its row either way);
--   object_kind  TG_ARGV[0], a short lower-case noun ('rule', 'case', ...);
--   object_key   the values of the columns named in TG_ARGV[1] (a comma-
--                separated list, like 'list_name,value'), joined with '/';
--   before/after the whole row as JSON (to_jsonb, its times as on the wire:
--                UTC with milliseconds and Z, _audit_row_json), NULL for
--                the side an insert or a delete does not have.
-- Options, TG_ARGV[2] on, each one of:
--   'omit:<column>'  leave that column out of before and after (secrets:
--                    api_tokens.secret_sha256 is never recorded);
--   'versioned'      the table keeps versions of one object and an INSERT
--                    is a new version (decision_policies): before is then
--                    the previous version, the row with the greatest key
--                    below the new one (TG_ARGV[1] must be one column).
-- An UPDATE that changes nothing but omitted columns records nothing.
-- Attached to rules, shadow_rules, decision_policies, lists, list_entries,
-- reviews, api_tokens, cases and case_alerts (these two: changes only). Attach it as an AFTER ... FOR EACH ROW trigger, one per table:
--   CREATE OR REPLACE TRIGGER <table>_audit
--       AFTER INSERT OR UPDATE OR DELETE ON <table>
--       FOR EACH ROW EXECUTE FUNCTION audit_change('<kind>', '<key column>');
-- The attachments live at the end of this file (function files are applied
-- after every migration, so the tables exist): add a line there for a new
-- table. Runs as the owner (SECURITY DEFINER): the roles that write the
-- audited tables need no privilege on audit_log, and cannot write it
-- themselves. On Citus the audited reference tables (rules, shadow_rules,
-- decision_policies, lists, list_entries, api_tokens) are changed on every
-- node's copy: the coordinator's copy writes the entry, the workers' copies
-- nothing (_on_worker_copy), so a change made in psql through the
-- coordinator is audited as on one node. Raises nothing of its own; a kind or key option missing is
-- a programming error (22023, invalid_parameter_value) at the first change.
CREATE OR REPLACE FUNCTION audit_change()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
-- Citus: the coordinator's copy writes other reference tables from its trigger
-- (a nested distributed statement, in the change's own distributed transaction).
SET citus.allow_nested_distributed_execution = on
AS $$
DECLARE
    v_before jsonb;
    v_after jsonb;
    v_row jsonb;
    v_key_columns text[];
    v_key text;
    v_option text;
    v_versioned boolean := false;
    v_omit text[] := '{}';
BEGIN
    -- Citus: a reference table's change runs this on every node's copy; the
    -- entry is written once, by the coordinator's copy (_on_worker_copy).
    IF _on_worker_copy() THEN
        RETURN NULL;
    END IF;
    IF TG_NARGS < 2 THEN
        RAISE EXCEPTION 'audit_change() on % needs an object kind and a key column', TG_TABLE_NAME
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR i IN 2 .. TG_NARGS - 1 LOOP
        v_option := TG_ARGV[i];
        IF v_option = 'versioned' THEN
            v_versioned := true;
        ELSIF v_option LIKE 'omit:%' THEN
            v_omit := v_omit || substr(v_option, 6);
        ELSE
            RAISE EXCEPTION 'audit_change() on %: unknown option %', TG_TABLE_NAME, v_option
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    IF TG_OP <> 'INSERT' THEN
        v_before := to_jsonb(OLD) - v_omit;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        v_after := to_jsonb(NEW) - v_omit;
    END IF;
    IF TG_OP = 'UPDATE' AND v_before = v_after THEN  -- compared at full precision
        RETURN NULL;
    END IF;
    v_before := _audit_row_json(v_before, TG_RELID);
    v_after := _audit_row_json(v_after, TG_RELID);
    v_row := coalesce(v_after, v_before);
    v_key_columns := string_to_array(TG_ARGV[1], ',');
    SELECT string_agg(v_row ->> btrim(c.name), '/' ORDER BY c.n)
    INTO v_key
    FROM unnest(v_key_columns) WITH ORDINALITY AS c(name, n);
    IF v_versioned AND TG_OP = 'INSERT' THEN
        EXECUTE format('SELECT to_jsonb(t) FROM %I.%I AS t WHERE t.%I < ($1).%I'
                       ' ORDER BY t.%I DESC LIMIT 1',
                       TG_TABLE_SCHEMA, TG_TABLE_NAME, btrim(v_key_columns[1]),
                       btrim(v_key_columns[1]), btrim(v_key_columns[1]))
        INTO v_before
        USING NEW;
        v_before := _audit_row_json(v_before, TG_RELID);
    END IF;
    INSERT INTO audit_log (actor, action, object_kind, object_key, before, after)
    VALUES (current_actor(),
            coalesce(nullif(current_setting('pgfraud.audit_action', true), ''), lower(TG_OP)),
            TG_ARGV[0], coalesce(v_key, ''), v_before - v_omit,
            v_after);
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION audit_change() IS
    'Trigger: writes one audit_log row (actor, action, kind, key, row before and after) per changed row; arguments: kind, key columns, options omit:<column> and versioned.';

REVOKE ALL ON FUNCTION audit_change() FROM PUBLIC;

-- The audited tables.
CREATE OR REPLACE TRIGGER rules_audit
    AFTER INSERT OR UPDATE OR DELETE ON rules
    FOR EACH ROW EXECUTE FUNCTION audit_change('rule', 'rule_id');
CREATE OR REPLACE TRIGGER decision_policies_audit
    AFTER INSERT OR UPDATE OR DELETE ON decision_policies
    FOR EACH ROW EXECUTE FUNCTION audit_change('policy', 'policy_id', 'versioned');
CREATE OR REPLACE TRIGGER lists_audit
    AFTER INSERT OR UPDATE OR DELETE ON lists
    FOR EACH ROW EXECUTE FUNCTION audit_change('list', 'list_name');
CREATE OR REPLACE TRIGGER list_entries_audit
    AFTER INSERT OR UPDATE OR DELETE ON list_entries
    FOR EACH ROW EXECUTE FUNCTION audit_change('list_entry', 'list_name,value');
CREATE OR REPLACE TRIGGER reviews_audit
    AFTER INSERT OR UPDATE OR DELETE ON reviews
    FOR EACH ROW EXECUTE FUNCTION audit_change('review', 'transaction_id');
-- Shadow rules (issue 18): started (insert), started again (update), promoted
-- or dropped (delete; a promotion is also the rule's update).
CREATE OR REPLACE TRIGGER shadow_rules_audit
    AFTER INSERT OR UPDATE OR DELETE ON shadow_rules
    FOR EACH ROW EXECUTE FUNCTION audit_change('shadow_rule', 'rule_id');
CREATE OR REPLACE TRIGGER api_tokens_audit
    AFTER INSERT OR UPDATE OR DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION audit_change('token', 'token_name', 'omit:secret_sha256');
-- Case actions (assign, close; a psql UPDATE or DELETE too). A case opened
-- by the alerts trigger is not an action: not recorded, so the store path
-- pays nothing for the audit trail.
CREATE OR REPLACE TRIGGER cases_audit
    AFTER UPDATE OR DELETE ON cases
    FOR EACH ROW EXECUTE FUNCTION audit_change('case', 'case_id');
-- Which alerts a case holds: taken out of a case or moved to another (a psql
-- DELETE or UPDATE). Added by the alerts trigger as cases open, or taken out
-- of a case closed as withdrawn when raised again (open_cases, which sets
-- pgfraud.placing_alerts for that statement): not recorded, as for cases.
CREATE OR REPLACE TRIGGER case_alerts_audit
    AFTER UPDATE OR DELETE ON case_alerts
    FOR EACH ROW
    WHEN (coalesce(current_setting('pgfraud.placing_alerts', true), '') <> 'on')
    EXECUTE FUNCTION audit_change('case_alert', 'case_id,transaction_id,rule_id');
