-- change_rule(p_rule_id text, p_enabled boolean, p_parameters jsonb) -> rules
--
-- set_rule for the service: turns a rule on or off and/or merges new
-- parameters (NULL: keep), validated by set_rule, and re-scores the stored
-- history (the rules trigger) in the same database transaction. Runs as the
-- owner so that the service's role needs no UPDATE on rules; the service
-- calls it only from PATCH /rules/<rule_id>, which takes the API token when
-- one is configured. Returns the updated row.
-- Errors: as set_rule: PF004 (rule_not_found), PF001 (invalid_input) naming
-- the rule and parameter.
CREATE OR REPLACE FUNCTION change_rule(
    p_rule_id text,
    p_enabled boolean DEFAULT NULL,
    p_parameters jsonb DEFAULT NULL
)
RETURNS rules
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    RETURN set_rule(p_rule_id, p_enabled, p_parameters);
END;
$$;

COMMENT ON FUNCTION change_rule(text, boolean, jsonb) IS
    'set_rule for the service role (runs as the owner): enable/disable a rule and/or merge parameters; PF004 unknown rule, PF001 bad parameters.';

REVOKE ALL ON FUNCTION change_rule(text, boolean, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION change_rule(text, boolean, jsonb) TO pgfraud_app;
