-- _rescore_rules_audited(p_rule_ids text[]) -> bigint
--
-- rescore_rules(p_rule_ids) for the re-scoring trigger of `rules`
-- (_rescore_on_rule_change), which also writes into the audit trail what
-- the change did to the alerts: for each rule re-scored, the audit_log
-- rows that this database transaction wrote for it (audit_change, an
-- insert, a delete or an update of enabled, parameters or expression) and
-- that have no counts yet get alerts_added (alerts of the rule that are
-- new: an alert_id above every one before) and alerts_removed (alerts it
-- had before and no longer has). Alerts that still fire keep their id and
-- count as neither. The counts are exact: they are taken under the
-- exclusive side of the rule-change lock (the one rescore_rules takes),
-- while no other writer can add or remove alerts. Returns rescore_rules'
-- number of new alerts. On Citus (_is_distributed) the set-based
-- rescore_rules cannot be planned; every account with transactions is
-- re-scored instead by score_account (all rules, from its first row), one
-- account at a time from the coordinator, each call's statements routed to
-- the account's worker, all in the change's one distributed transaction.
-- Alert ids are unique across the cluster (each node's sequence range),
-- so added and removed are counted from the ids held before: kept = alerts
-- of the rule whose id was there before. Then the open cases the change
-- left with no alert raised are closed as withdrawn (_withdraw_cases).
-- Errors: as rescore_rules (25000 outside READ COMMITTED).
CREATE OR REPLACE FUNCTION _rescore_rules_audited(p_rule_ids text[])
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
SET citus.allow_nested_distributed_execution = on
AS $$
DECLARE
    v_before jsonb;
    v_last_alert_id bigint;
    v_new bigint;
    v_before_ids bigint[];
    v_account_id bigint;
    v_after jsonb;
    v_rule_id text;
    v_kept bigint;
    -- This transaction's id, read once (Citus sends a volatile call in a
    -- reference table's UPDATE nowhere).
    v_xact xid8 := pg_current_xact_id();
BEGIN
    IF coalesce(cardinality(p_rule_ids), 0) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(7231546390112208);
    IF _is_distributed() THEN
        SELECT coalesce(jsonb_object_agg(c.rule_id, c.n), '{}')
        INTO v_before
        FROM (SELECT al.rule_id, count(*) AS n FROM alerts AS al
              WHERE al.rule_id = ANY (p_rule_ids) GROUP BY al.rule_id) AS c;
        SELECT coalesce(array_agg(al.alert_id), '{}') INTO v_before_ids
        FROM alerts AS al WHERE al.rule_id = ANY (p_rule_ids);
        v_new := 0;
        FOR v_account_id IN SELECT s.account_id FROM account_states AS s ORDER BY s.account_id LOOP
            v_new := v_new + score_account(v_account_id, NULL);
        END LOOP;
        -- Per rule, plain statements: Citus plans no outer join of a
        -- function with a distributed table, nor an UPDATE of a reference
        -- table from one.
        SELECT coalesce(jsonb_object_agg(c.rule_id, jsonb_build_array(c.n, c.kept)), '{}')
        INTO v_after
        FROM (SELECT al.rule_id, count(*) AS n,
                     count(*) FILTER (WHERE al.alert_id = ANY (v_before_ids)) AS kept
              FROM alerts AS al WHERE al.rule_id = ANY (p_rule_ids) GROUP BY al.rule_id) AS c;
        FOREACH v_rule_id IN ARRAY p_rule_ids LOOP
            v_kept := coalesce((v_after -> v_rule_id ->> 1)::bigint, 0);
            UPDATE audit_log AS a
            SET alerts_added = coalesce((v_after -> v_rule_id ->> 0)::bigint, 0) - v_kept,
                alerts_removed = coalesce((v_before ->> v_rule_id)::bigint, 0) - v_kept
            WHERE a.written_xact = v_xact
              AND a.object_kind = 'rule'
              AND a.object_key = v_rule_id
              AND a.alerts_added IS NULL
              AND (a.action <> 'update'
                   OR (a.before -> 'enabled', a.before -> 'parameters', a.before -> 'expression')
                      IS DISTINCT FROM (a.after -> 'enabled', a.after -> 'parameters', a.after -> 'expression'));
        END LOOP;
        PERFORM _withdraw_cases(p_rule_ids);
        RETURN v_new;
    END IF;
    SELECT coalesce(jsonb_object_agg(c.rule_id, c.n), '{}')
    INTO v_before
    FROM (SELECT al.rule_id, count(*) AS n FROM alerts AS al
          WHERE al.rule_id = ANY (p_rule_ids) GROUP BY al.rule_id) AS c;
    SELECT coalesce(max(al.alert_id), 0) INTO v_last_alert_id FROM alerts AS al;
    v_new := rescore_rules(p_rule_ids);
    WITH counted AS (
        SELECT r.rule_id,
               count(al.alert_id) FILTER (WHERE al.alert_id > v_last_alert_id) AS added,
               coalesce((v_before ->> r.rule_id)::bigint, 0)
                   - count(al.alert_id) FILTER (WHERE al.alert_id <= v_last_alert_id) AS removed
        FROM unnest(p_rule_ids) AS r(rule_id)
        LEFT JOIN alerts AS al ON al.rule_id = r.rule_id
        GROUP BY r.rule_id
    )
    UPDATE audit_log AS a
    SET alerts_added = c.added, alerts_removed = c.removed
    FROM counted AS c
    WHERE a.written_xact = v_xact
      AND a.object_kind = 'rule'
      AND a.object_key = c.rule_id
      AND a.alerts_added IS NULL
      AND (a.action <> 'update'
           OR (a.before -> 'enabled', a.before -> 'parameters', a.before -> 'expression')
              IS DISTINCT FROM (a.after -> 'enabled', a.after -> 'parameters', a.after -> 'expression'));
    PERFORM _withdraw_cases(p_rule_ids);
    RETURN v_new;
END;
$$;

COMMENT ON FUNCTION _rescore_rules_audited(text[]) IS
    'rescore_rules, and the alerts each re-scored rule added and removed written into this transaction''s audit_log rows of the change.';

REVOKE ALL ON FUNCTION _rescore_rules_audited(text[]) FROM PUBLIC;
