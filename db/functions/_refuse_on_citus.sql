-- _refuse_on_citus() -> void
--
-- On pgfraud's Citus layout (_is_distributed), refuses the rules that
-- layout cannot score (docs/scaling.md, "Not on Citus"): a live rule
-- reading other accounts' rows at a merchant (compromised_merchant on, or
-- an enabled user's rule reading a merchant_* feature: Citus cannot plan
-- the cross-shard read from one account's scoring), and any shadow rule
-- (scored through _evaluate_from, LANGUAGE sql over all accounts). Called
-- after a change of rules (_rescore_on_rule_change, on the coordinator) and
-- by shadow_rule, so the change is rolled back with the error. Nothing on
-- one node. Errors: PF001 (invalid_input) naming the rule (column: its
-- rule_id) and what is not supported.
CREATE OR REPLACE FUNCTION _refuse_on_citus()
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = public, pg_temp
SET citus.allow_nested_distributed_execution = on
AS $$
DECLARE
    v_rule_id text;
BEGIN
    IF NOT _is_distributed() THEN
        RETURN;
    END IF;
    SELECT r.rule_id INTO v_rule_id
    FROM rules AS r
    WHERE r.enabled
      AND (r.rule_id = 'compromised_merchant'
           OR (r.expression IS NOT NULL AND _reads_merchant_features(r.expression)))
    ORDER BY r.rule_id
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'rule % reads other accounts'' rows at a merchant, which pgfraud on Citus does not score: it cannot be enabled there', v_rule_id
            USING ERRCODE = 'PF001', COLUMN = v_rule_id;
    END IF;
    SELECT s.rule_id INTO v_rule_id FROM shadow_rules AS s ORDER BY s.rule_id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'shadow rule %: pgfraud on Citus does not score shadow rules', v_rule_id
            USING ERRCODE = 'PF001', COLUMN = v_rule_id;
    END IF;
END;
$$;

COMMENT ON FUNCTION _refuse_on_citus() IS
    'On the Citus layout: PF001 when a merchant-reading rule is enabled or a shadow rule exists (not scored there); nothing on one node.';

REVOKE ALL ON FUNCTION _refuse_on_citus() FROM PUBLIC;
