-- 0030: the audit trail tells a shadow rule's promotion from its drop (both
-- delete the shadow_rules row): promote_shadow_rule and drop_shadow_rule
-- name their action ('promote', 'drop') for audit_change through the
-- transaction-local setting pgfraud.audit_action.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_action_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_action_check
    CHECK (action IN ('insert', 'update', 'delete', 'promote', 'drop'));
