-- get_rule_versions(p_rule_id text) -> SETOF rule_versions
--
-- Rule versions (issue 18): every version of one rule, newest first, so an
-- alert (rule_version, raised_rule_version) or a decision's rule entry
-- (rule_version) can be explained by the parameters it was made with.
-- Errors: PF004 (rule_not_found) for a rule id with no version (never a
-- rule; a deleted rule keeps its versions).
CREATE OR REPLACE FUNCTION get_rule_versions(p_rule_id text)
RETURNS SETOF rule_versions
LANGUAGE plpgsql
STABLE
SET search_path = public, pg_temp
AS $$
BEGIN
    RETURN QUERY
        SELECT v.*
        FROM rule_versions AS v
        WHERE v.rule_id = p_rule_id
        ORDER BY v.version DESC;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no rule named %', p_rule_id USING ERRCODE = 'PF004', COLUMN = 'rule_id';
    END IF;
END;
$$;

COMMENT ON FUNCTION get_rule_versions(text) IS
    'Every version of one rule (enabled, parameters, expression, when, by whom), newest first; PF004 for an unknown rule.';

REVOKE ALL ON FUNCTION get_rule_versions(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_rule_versions(text) TO pgfraud_app, pgfraud_readonly;
