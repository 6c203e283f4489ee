-- _current_rule_versions() -> jsonb
--
-- Rule versions (issue 18): every rule's latest version as {rule_id:
-- version} (an integer), read once per scoring statement (never per alert)
-- by the functions that write alerts (_rescore_accounts, rescore_rules),
-- which store it in alerts.rule_version. One pass over rule_versions, a
-- table of one row per rule change. {} when there is none. Raises nothing.
CREATE OR REPLACE FUNCTION _current_rule_versions()
RETURNS jsonb
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$
    SELECT coalesce(jsonb_object_agg(v.rule_id, v.version), '{}'::jsonb)
    FROM (SELECT rv.rule_id, max(rv.version) AS version
          FROM rule_versions AS rv
          GROUP BY rv.rule_id) AS v;
$$;

COMMENT ON FUNCTION _current_rule_versions() IS
    'Every rule''s latest version from rule_versions as {rule_id: version}; read once per scoring statement.';

REVOKE ALL ON FUNCTION _current_rule_versions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _current_rule_versions() TO pgfraud_app, pgfraud_readonly;
