-- resolve_backtest_policy(p_policy jsonb) -> jsonb
--
-- The decision policy a backtest runs (evaluate_decisions, `pgfraud
-- evaluate --policy`, POST /evaluate's "policy"): the policy in force now
-- with p_policy {"review_threshold": int, "decline_threshold": int,
-- "default_score": int, "rule_scores": {rule_id: int}} (each optional, at
-- least one) merged over it, checked exactly as a live change is
-- (_merge_policy, which set_decision_policy calls). NULL: the policy in
-- force now. Returns {based_on (the policy_id merged over),
-- review_threshold, decline_threshold, default_score, rule_scores: {rule_id:
-- score} for every rule of the catalogue (a rule it does not name scores
-- default_score)}. Changes nothing.
-- Errors: PF001 (invalid_input) naming the field (review_threshold,
-- decline_threshold, default_score, rule_scores.<rule_id>) for a value that
-- is not an integer in range or a decline threshold below the review one;
-- PF004 (rule_not_found) for a score of a rule that does not exist.
CREATE OR REPLACE FUNCTION resolve_backtest_policy(p_policy jsonb)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = public, pg_temp
AS $$
DECLARE
    v_policy decision_policies;
    v_based_on bigint;
BEGIN
    SELECT p.* INTO v_policy
    FROM decision_policies AS p
    WHERE p.effective_from <= clock_timestamp()
    ORDER BY p.effective_from DESC, p.policy_id DESC
    LIMIT 1;
    v_based_on := v_policy.policy_id;
    IF p_policy IS NOT NULL THEN
        v_policy := _merge_policy(v_policy, p_policy);
    END IF;
    RETURN jsonb_build_object(
        'based_on', v_based_on,
        'review_threshold', v_policy.review_threshold,
        'decline_threshold', v_policy.decline_threshold,
        'default_score', v_policy.default_score,
        'rule_scores', (SELECT coalesce(jsonb_object_agg(r.rule_id,
                                            coalesce((v_policy.rule_scores ->> r.rule_id)::integer,
                                                     v_policy.default_score) ORDER BY r.rule_id), '{}')
                        FROM rules AS r));
END;
$$;

COMMENT ON FUNCTION resolve_backtest_policy(jsonb) IS
    'The policy a backtest runs: the given thresholds and rule scores merged over the policy in force, checked as a live change (PF001 naming the field, PF004); NULL: the policy in force.';

REVOKE ALL ON FUNCTION resolve_backtest_policy(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION resolve_backtest_policy(jsonb) TO pgfraud_app, pgfraud_readonly;
