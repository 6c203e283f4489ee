-- check_rule_parameters() -> trigger
--
-- BEFORE INSERT OR UPDATE trigger of `rules`: however a row is written
-- (set_rule, an UPDATE by hand), its parameters pass validate_rules() and are
-- stored normalised, so a stored configuration can never break is_fraud.
-- During `pgfraud migrate` (_is_migrating) the check waits: a
-- migration may add a rule whose parameters only the new function files
-- know, and migrate validates every stored rule once they are applied.
-- Errors: PF001 from validate_rules, naming the rule and parameter.
CREATE OR REPLACE FUNCTION check_rule_parameters()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF _is_migrating() THEN
        RETURN NEW;
    END IF;
    -- A user's rule (add_rule) has an expression and no parameters.
    IF NEW.expression IS NOT NULL THEN
        IF NEW.parameters <> '{}' THEN
            RAISE EXCEPTION 'rule % is written by its expression and has no parameters', NEW.rule_id
                USING ERRCODE = 'PF001', COLUMN = NEW.rule_id;
        END IF;
        RETURN NEW;
    END IF;
    NEW.parameters := validate_rules(jsonb_build_object(NEW.rule_id, NEW.parameters)) -> NEW.rule_id;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION check_rule_parameters() IS
    'Trigger of rules: validates and normalises parameters on every INSERT or UPDATE (PF001 when invalid).';

REVOKE ALL ON FUNCTION check_rule_parameters() FROM PUBLIC;

-- CREATE OR REPLACE TRIGGER needs PostgreSQL 14 (the supported minimum).
CREATE OR REPLACE TRIGGER rules_check_parameters
    BEFORE INSERT OR UPDATE OF rule_id, parameters ON rules
    FOR EACH ROW EXECUTE FUNCTION check_rule_parameters();
