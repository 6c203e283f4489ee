-- _compile_custom_rules() -> integer
--
-- (Re)creates _custom_rule_events(p_rules jsonb, p_features rule_features[])
-- -> SETOF fraud_event from the users' rules stored in `rules` (those with
-- an expression, each already checked by check_rule_expression): one branch
-- per rule, run when p_rules names it, firing where its expression is true
-- on a features row. observed and threshold are NULL; the reason quotes the
-- expression and the values of the features it uses. A row on which the
-- expression cannot be computed (an arithmetic error: overflow, division by
-- zero, a failed cast; SQLSTATE class 22) does not fire, as if it were NULL,
-- and never fails the store that scores it: the rule runs set-based, and
-- only when that raises such an error, again row by row with each row's
-- error caught. _evaluate_from calls
-- it, so users' rules run in the one scoring path (from scratch, on arrival,
-- in batch and in backtests). Called by the rules triggers when a user's
-- rule is added, changed or removed (add_rule, or psql) and whenever this
-- file is applied (pgfraud migrate), so the compiled function always
-- matches the table. Returns the number of rules compiled.
-- Only rows checked by check_rule_expression reach here (add_rule is the
-- one writer); each is checked again before it is compiled.
-- On Citus every node compiles its own copy from its copy of `rules` (the
-- rules triggers run on each node's copy; migrate puts the coordinator's on
-- the workers), with Citus's DDL propagation off: a per-account scoring on
-- a worker calls the worker's.
CREATE OR REPLACE FUNCTION _compile_custom_rules()
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
SET citus.enable_ddl_propagation = off
SET citus.allow_nested_distributed_execution = on
AS $$
DECLARE
    v_rule record;
    v_branches text[] := '{}';
    v_used text[];
    v_select text;
    v_where text;
    v_count integer := 0;
BEGIN
    -- Two compiles at once would both replace the function, and the second
    -- fail ("tuple concurrently updated"): the exclusive side of the
    -- rule-change lock (see rescore_alerts) makes them take turns, and the
    -- later one reads the rules the earlier one committed.
    PERFORM pg_advisory_xact_lock(7231546390112208);
    FOR v_rule IN
        SELECT r.rule_id, r.expression FROM rules AS r WHERE r.expression IS NOT NULL ORDER BY r.rule_id
    LOOP
        PERFORM check_rule_expression(v_rule.expression);
        SELECT coalesce(array_agg(DISTINCT lower(m[1]) ORDER BY lower(m[1])), '{}')
        INTO v_used
        FROM regexp_matches(v_rule.expression, '([A-Za-z_][A-Za-z0-9_]*)', 'g') AS m
        WHERE lower(m[1]) IN ('amount', 'prior_count', 'prior_average', 'seconds_since_previous',
                              'count_1h', 'sum_1h', 'count_24h', 'sum_24h', 'merchant_id',
                              'first_at_merchant', 'merchant_transactions_7d', 'merchant_fraud_7d',
                              'merchant_fraud_share_7d', 'merchant_transactions_30d',
                              'merchant_fraud_30d', 'merchant_fraud_share_30d',
                              'merchant_surge_7d');
        -- The rule's query over a source of features rows: v_select, then
        -- the source, then v_where.
        v_select := format(
            $select$SELECT f.transaction_id, f.account_id, f.ts, f.amount, %1$L::text, NULL::numeric,
                   NULL::numeric, %2$s
            FROM $select$,
            v_rule.rule_id,
            format('format(%L, %s)',
                   'rule ' || v_rule.rule_id || ': ' || replace(v_rule.expression, '%', '%%')
                   || CASE WHEN cardinality(v_used) > 0
                           THEN ' with ' || (SELECT string_agg(u || ' = %s', ', ') FROM unnest(v_used) AS u)
                           ELSE '' END,
                   (SELECT coalesce(string_agg(format('coalesce(f.%I::text, %L)', u, 'null'), ', '), '''''')
                    FROM unnest(v_used) AS u)));
        -- Lists (issue 17): account_in_list/merchant_in_list become _is_listed calls.
        v_where := format(' AS f WHERE coalesce((%s), false)',
                          _bind_list_calls(v_rule.expression, true));
        v_branches := v_branches || format(
            $branch$
    IF p_rules ? %1$L THEN
        BEGIN
            v_events := ARRAY(SELECT e::fraud_event FROM (%2$s) AS e);
            RETURN QUERY SELECT * FROM unnest(v_events);
        EXCEPTION WHEN data_exception THEN
            FOREACH v_feature IN ARRAY p_features LOOP
                BEGIN
                    RETURN QUERY %3$s;
                EXCEPTION WHEN data_exception THEN
                    NULL;  -- this row's value cannot be computed: no event
                END;
            END LOOP;
        END;
    END IF;$branch$,
            v_rule.rule_id,
            v_select || 'unnest(p_features)' || v_where,
            v_select || 'unnest(ARRAY[v_feature])' || v_where);
        v_count := v_count + 1;
    END LOOP;
    EXECUTE format(
        $function$
        CREATE OR REPLACE FUNCTION _custom_rule_events(p_rules jsonb, p_features rule_features[])
        RETURNS SETOF fraud_event
        LANGUAGE plpgsql
        STABLE
        AS $body$
DECLARE
    v_events fraud_event[];
    v_feature rule_features;
BEGIN%s
    RETURN;
END;
        $body$
        $function$,
        array_to_string(v_branches, ''));
    COMMENT ON FUNCTION _custom_rule_events(jsonb, rule_features[]) IS
        'Generated by _compile_custom_rules: the users'' rules named in p_rules, fired on features rows.';
    REVOKE ALL ON FUNCTION _custom_rule_events(jsonb, rule_features[]) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION _custom_rule_events(jsonb, rule_features[]) TO pgfraud_app, pgfraud_readonly;
    RETURN v_count;
END;
$$;

COMMENT ON FUNCTION _compile_custom_rules() IS
    'Regenerates _custom_rule_events from the users'' rules in the rules table; returns how many.';

REVOKE ALL ON FUNCTION _compile_custom_rules() FROM PUBLIC;

-- Applied with the function files: the compiled function follows the table.
SELECT _compile_custom_rules();
