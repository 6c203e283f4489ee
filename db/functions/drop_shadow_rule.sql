-- drop_shadow_rule(p_rule_id text) -> shadow_rules
--
-- Ends a rule's shadow (issue 18): the shadow and its shadow alerts go; the
-- live rule is untouched. Takes the exclusive side of the rule-change lock,
-- as shadow_rule does. Returns the removed shadow_rules row. Errors: PF004
-- (rule_not_found) when the rule has no shadow. SECURITY DEFINER: the
-- service calls it for owners only (DELETE /rules/<rule_id>/shadow).
CREATE OR REPLACE FUNCTION drop_shadow_rule(p_rule_id text)
RETURNS shadow_rules
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_shadow shadow_rules;
BEGIN
    PERFORM pg_advisory_xact_lock(7231546390112208);
    -- Recorded as a 'drop' in the audit trail (audit_change), not a plain delete.
    PERFORM set_config('pgfraud.audit_action', 'drop', true);
    DELETE FROM shadow_rules AS s WHERE s.rule_id = p_rule_id RETURNING s.* INTO v_shadow;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'rule % has no shadow', p_rule_id USING ERRCODE = 'PF004', COLUMN = 'rule_id';
    END IF;
    PERFORM set_config('pgfraud.audit_action', '', true);
    RETURN v_shadow;
END;
$$;

COMMENT ON FUNCTION drop_shadow_rule(text) IS
    'Ends a rule''s shadow (its shadow alerts go; the live rule is untouched); PF004 when the rule has no shadow.';

REVOKE ALL ON FUNCTION drop_shadow_rule(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION drop_shadow_rule(text) TO pgfraud_app;
