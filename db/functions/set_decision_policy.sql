-- set_decision_policy(p_changes jsonb, p_actor text DEFAULT NULL) -> jsonb
--
-- Puts a new version of the decision policy in force from now: p_changes
-- {"review_threshold": int, "decline_threshold": int, "default_score": int,
-- "rule_scores": {rule_id: int}} (each optional) merged over the version
-- in force. Thresholds are integers 1..1000 with decline_threshold >=
-- review_threshold; scores integers 0..1000. Earlier decisions keep the
-- version they were made with (decisions.policy_id). A change that leaves
-- every value as it is (the same thresholds, default and rule scores as the
-- version in force) writes nothing: no new version, no audit row; the
-- version in force is returned (same policy_id). Takes the exclusive
-- side of the rule-change lock, so a store either decides before this
-- version (and commits before it takes effect) or after it. Returns
-- get_decision_policy() of the new version. Runs as the owner (the service
-- calls it from PUT /policy with the token).
-- The check is _merge_policy's, which backtests' candidate policies pass too.
-- Errors: PF001 (invalid_input) naming the field (review_threshold,
-- decline_threshold, default_score, rule_scores.<rule_id>) for a value that
-- is not an integer in range or a decline threshold below the review one;
-- PF004 (rule_not_found) for a score of a rule that does not exist. Nothing
-- is changed when it raises.
CREATE OR REPLACE FUNCTION set_decision_policy(p_changes jsonb, p_actor text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_policy decision_policies;
    v_current decision_policies;
    v_actor text := _actor(p_actor);
BEGIN
    -- Checked first against the version in force (no lock held while
    -- refusing bad input), then merged again under the lock.
    SELECT p.* INTO v_policy
    FROM decision_policies AS p
    WHERE p.effective_from <= clock_timestamp()
    ORDER BY p.effective_from DESC, p.policy_id DESC
    LIMIT 1;
    PERFORM _merge_policy(v_policy, p_changes);
    PERFORM pg_advisory_xact_lock(7231546390112208);
    SELECT p.* INTO v_policy
    FROM decision_policies AS p
    WHERE p.effective_from <= clock_timestamp()
    ORDER BY p.effective_from DESC, p.policy_id DESC
    LIMIT 1;
    v_current := v_policy;
    v_policy := _merge_policy(v_policy, p_changes);
    IF (v_policy.review_threshold, v_policy.decline_threshold, v_policy.default_score,
        v_policy.rule_scores)
       IS NOT DISTINCT FROM
       (v_current.review_threshold, v_current.decline_threshold, v_current.default_score,
        v_current.rule_scores) THEN
        RETURN get_decision_policy();
    END IF;
    INSERT INTO decision_policies (review_threshold, decline_threshold, default_score, rule_scores,
                                   effective_from, set_by)
    VALUES (v_policy.review_threshold, v_policy.decline_threshold, v_policy.default_score,
            v_policy.rule_scores, clock_timestamp(), v_actor)
    RETURNING effective_from INTO v_policy.effective_from;
    RETURN get_decision_policy(v_policy.effective_from);
END;
$$;

COMMENT ON FUNCTION set_decision_policy(jsonb, text) IS
    'New version of the decision policy from now: thresholds and rule scores merged over the current ones (the same values: nothing written, the current version returned); PF001 naming the field, PF004 unknown rule.';

REVOKE ALL ON FUNCTION set_decision_policy(jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION set_decision_policy(jsonb, text) TO pgfraud_app;
