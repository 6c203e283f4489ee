-- get_rules() -> SETOF rules
--
-- The rule catalogue (rule_id, enabled, parameters, description) in rule_id
-- order. Raises nothing.
CREATE OR REPLACE FUNCTION get_rules()
RETURNS SETOF rules
-- (PL/pgSQL: Citus plans no LANGUAGE sql function over its tables.)
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    RETURN QUERY SELECT r.* FROM rules AS r ORDER BY r.rule_id;
END;
$$;

COMMENT ON FUNCTION get_rules() IS 'The rule catalogue in rule_id order.';

REVOKE ALL ON FUNCTION get_rules() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_rules() TO pgfraud_app, pgfraud_readonly;
