-- promote_shadow_rule(p_rule_id text) -> rules
--
-- Makes a shadow rule live (issue 18), in one database transaction: the
-- rule is switched on with the shadow's parameters through set_rule (the
-- same validator, a new rule version, and the same re-scoring of the stored
-- history as any rule change, by the trigger on rules), and the shadow and
-- its shadow alerts go. Returns the updated rules row. Errors: PF004
-- (rule_not_found) when the rule has no shadow; PF001 as set_rule;
-- invalid_transaction_state (25000) outside READ COMMITTED, as any rule
-- change. SECURITY DEFINER: the service calls it for owners only (POST
-- /rules/<rule_id>/shadow/promote).
CREATE OR REPLACE FUNCTION promote_shadow_rule(p_rule_id text)
RETURNS rules
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_shadow shadow_rules;
    v_rule rules;
BEGIN
    PERFORM pg_advisory_xact_lock(7231546390112208);
    SELECT * INTO v_shadow FROM shadow_rules AS s WHERE s.rule_id = p_rule_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'rule % has no shadow', p_rule_id USING ERRCODE = 'PF004', COLUMN = 'rule_id';
    END IF;
    -- Recorded as a 'promote' in the audit trail (audit_change), not a plain delete.
    PERFORM set_config('pgfraud.audit_action', 'promote', true);
    DELETE FROM shadow_rules AS s WHERE s.rule_id = p_rule_id;
    PERFORM set_config('pgfraud.audit_action', '', true);
    v_rule := set_rule(p_rule_id, true, v_shadow.parameters);
    RETURN v_rule;
END;
$$;

COMMENT ON FUNCTION promote_shadow_rule(text) IS
    'Makes a shadow rule live (set_rule with its parameters, switched on, re-scoring the history) and removes the shadow; PF004 when the rule has no shadow.';

REVOKE ALL ON FUNCTION promote_shadow_rule(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION promote_shadow_rule(text) TO pgfraud_app;
