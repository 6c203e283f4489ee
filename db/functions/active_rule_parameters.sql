-- active_rule_parameters() -> jsonb
--
-- The enabled rules of the `rules` table as {rule_id: parameters}, the shape
-- evaluate_account takes. Raises nothing; {} when no rule is enabled.
CREATE OR REPLACE FUNCTION active_rule_parameters()
RETURNS jsonb
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$
    SELECT coalesce(jsonb_object_agg(r.rule_id, r.parameters), '{}'::jsonb)
    FROM rules AS r
    WHERE r.enabled;
$$;

COMMENT ON FUNCTION active_rule_parameters() IS
    'The enabled rules as {rule_id: parameters}, the shape evaluate_account takes.';

REVOKE ALL ON FUNCTION active_rule_parameters() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION active_rule_parameters() TO pgfraud_app, pgfraud_readonly;
