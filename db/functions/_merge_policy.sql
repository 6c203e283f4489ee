-- _merge_policy(p_base decision_policies, p_changes jsonb) -> decision_policies
--
-- The policy p_base with p_changes {"review_threshold": int,
-- "decline_threshold": int, "default_score": int, "rule_scores": {rule_id:
-- int}} (each optional, at least one) merged over it, checked: the one
-- check of a policy, for a live change (set_decision_policy) and a
-- backtest's candidate (resolve_backtest_policy). Thresholds are integers
-- 1..1000 with decline_threshold >= review_threshold; scores integers
-- 0..1000 of rules that exist. Only the four value columns of the result
-- are meaningful (policy_id, effective_from, set_by are p_base's).
-- Errors: PF001 (invalid_input) naming the field (review_threshold,
-- decline_threshold, default_score, rule_scores, rule_scores.<rule_id>) for
-- an unknown field, a value that is not an integer in range, or a decline
-- threshold below the review one; PF004 (rule_not_found) for a score of a
-- rule that does not exist. Changes nothing.
CREATE OR REPLACE FUNCTION _merge_policy(p_base decision_policies, p_changes jsonb)
RETURNS decision_policies
LANGUAGE plpgsql
STABLE
SET search_path = public, pg_temp
AS $$
DECLARE
    v_policy decision_policies := p_base;
    v_key text;
    v_value jsonb;
    v_field text;
BEGIN
    IF jsonb_typeof(p_changes) IS DISTINCT FROM 'object' OR p_changes = '{}' THEN
        RAISE EXCEPTION 'give at least one of review_threshold, decline_threshold, default_score, rule_scores'
            USING ERRCODE = 'PF001';
    END IF;
    FOR v_key IN SELECT k FROM jsonb_object_keys(p_changes) AS k ORDER BY k LOOP
        IF v_key NOT IN ('review_threshold', 'decline_threshold', 'default_score', 'rule_scores') THEN
            RAISE EXCEPTION '% is not a field of the policy', v_key
                USING ERRCODE = 'PF001', COLUMN = v_key,
                      HINT = 'review_threshold, decline_threshold, default_score, rule_scores';
        END IF;
    END LOOP;
    IF p_changes ? 'rule_scores' AND jsonb_typeof(p_changes -> 'rule_scores') <> 'object' THEN
        RAISE EXCEPTION 'rule_scores must be an object {rule_id: score}'
            USING ERRCODE = 'PF001', COLUMN = 'rule_scores';
    END IF;
    FOR v_field, v_value IN
        SELECT c.key, c.value FROM jsonb_each(p_changes) AS c
        WHERE c.key <> 'rule_scores'
        UNION ALL
        SELECT 'rule_scores.' || s.key, s.value
        FROM jsonb_each(CASE WHEN p_changes ? 'rule_scores' THEN p_changes -> 'rule_scores'
                             ELSE '{}' END) AS s
        ORDER BY 1
    LOOP
        IF jsonb_typeof(v_value) IS DISTINCT FROM 'number'
           OR (v_value #>> '{}')::numeric <> trunc((v_value #>> '{}')::numeric) THEN
            RAISE EXCEPTION '% must be an integer, not %', v_field, v_value
                USING ERRCODE = 'PF001', COLUMN = v_field;
        END IF;
        IF v_field IN ('review_threshold', 'decline_threshold')
           AND (v_value #>> '{}')::numeric NOT BETWEEN 1 AND 1000 THEN
            RAISE EXCEPTION '% must be from 1 to 1000, not %', v_field, v_value
                USING ERRCODE = 'PF001', COLUMN = v_field;
        END IF;
        IF v_field NOT IN ('review_threshold', 'decline_threshold')
           AND (v_value #>> '{}')::numeric NOT BETWEEN 0 AND 1000 THEN
            RAISE EXCEPTION '% must be from 0 to 1000, not %', v_field, v_value
                USING ERRCODE = 'PF001', COLUMN = v_field;
        END IF;
        IF v_field LIKE 'rule_scores.%'
           AND NOT EXISTS (SELECT FROM rules AS r WHERE r.rule_id = substr(v_field, 13)) THEN
            RAISE EXCEPTION 'no rule named %', substr(v_field, 13)
                USING ERRCODE = 'PF004', COLUMN = v_field;
        END IF;
    END LOOP;
    v_policy.review_threshold := coalesce((p_changes ->> 'review_threshold')::integer,
                                          v_policy.review_threshold);
    v_policy.decline_threshold := coalesce((p_changes ->> 'decline_threshold')::integer,
                                           v_policy.decline_threshold);
    v_policy.default_score := coalesce((p_changes ->> 'default_score')::integer,
                                       v_policy.default_score);
    v_policy.rule_scores := v_policy.rule_scores || coalesce(p_changes -> 'rule_scores', '{}');
    IF v_policy.decline_threshold < v_policy.review_threshold THEN
        RAISE EXCEPTION 'decline_threshold (%) must be at least review_threshold (%)',
                v_policy.decline_threshold, v_policy.review_threshold
            USING ERRCODE = 'PF001',
                  COLUMN = CASE WHEN p_changes ? 'decline_threshold' THEN 'decline_threshold'
                                ELSE 'review_threshold' END;
    END IF;
    RETURN v_policy;
END;
$$;

COMMENT ON FUNCTION _merge_policy(decision_policies, jsonb) IS
    'A policy with changes merged over it, checked (PF001 naming the field, PF004 unknown rule): the one check of set_decision_policy and backtests.';

REVOKE ALL ON FUNCTION _merge_policy(decision_policies, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _merge_policy(decision_policies, jsonb) TO pgfraud_app, pgfraud_readonly;
