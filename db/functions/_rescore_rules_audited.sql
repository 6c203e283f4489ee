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
-- number of new alerts. Errors: as rescore_rules (25000 outside READ
-- COMMITTED).
CREATE OR REPLACE FUNCTION _rescore_rules_audited(p_rule_ids text[])
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_before jsonb;
    v_last_alert_id bigint;
    v_new bigint;
BEGIN
    IF coalesce(cardinality(p_rule_ids), 0) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(7231546390112208);
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
    WHERE a.written_xact = pg_current_xact_id()
      AND a.object_kind = 'rule'
      AND a.object_key = c.rule_id
      AND a.alerts_added IS NULL
      AND (a.action <> 'update'
           OR (a.before -> 'enabled', a.before -> 'parameters', a.before -> 'expression')
              IS DISTINCT FROM (a.after -> 'enabled', a.after -> 'parameters', a.after -> 'expression'));
    RETURN v_new;
END;
$$;

COMMENT ON FUNCTION _rescore_rules_audited(text[]) IS
    'rescore_rules, and the alerts each re-scored rule added and removed written into this transaction''s audit_log rows of the change.';

REVOKE ALL ON FUNCTION _rescore_rules_audited(text[]) FROM PUBLIC;
