-- _lock_rule_change() -> trigger
--
-- BEFORE statement trigger on `rules` and `shadow_rules`: takes the
-- exclusive side of the rule-change lock (7231546390112208, see
-- rescore_alerts) before the statement locks or writes any row. Every path
-- that changes rules, shadows, the decision policy or list entries takes
-- that lock first and rows after, so a statement written in psql (or a
-- function that forgot) cannot take a rule's row and then queue for the
-- lock behind a transaction that holds the lock and wants the row (a
-- deadlock). Held to the end of the transaction; taking it twice is free.
-- Raises nothing.
CREATE OR REPLACE FUNCTION _lock_rule_change()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7231546390112208);
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION _lock_rule_change() IS
    'Trigger: the exclusive rule-change lock before a statement on rules or shadow_rules touches a row.';

REVOKE ALL ON FUNCTION _lock_rule_change() FROM PUBLIC;

CREATE OR REPLACE TRIGGER rules_lock_rule_change
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON rules
    FOR EACH STATEMENT EXECUTE FUNCTION _lock_rule_change();
CREATE OR REPLACE TRIGGER shadow_rules_lock_rule_change
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON shadow_rules
    FOR EACH STATEMENT EXECUTE FUNCTION _lock_rule_change();
