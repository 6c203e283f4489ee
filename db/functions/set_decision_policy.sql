-- set_decision_policy(p_changes jsonb, p_actor text DEFAULT NULL) -> jsonb
--
-- Puts a new version of the decision policy in force from now: p_changes
-- {"review_threshold": int, "decline_threshold": int, "default_score": int,
-- "rule_scores": {rule_id: int}} (each optional) merged over the version
-- in force. Thresholds are integers 1..1000 with decline_threshold >=
-- review_threshold; scores integers 0..1000. Earlier decisions keep the
-- version they were made with (decisions.policy_id). Takes the exclusive
-- side of the rule-change lock, so a store either decides before this
-- version (and commits before it takes effect) or after it. Returns
-- get_decision_policy() of the new version. Runs as the owner (the service
-- calls it from PUT /policy with the token).
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
    v_key text;
    v_value jsonb;
    v_field text;
    v_actor text := _actor(p_actor);
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
    PERFORM pg_advisory_xact_lock(7231546390112208);
    SELECT p.* INTO v_policy
    FROM decision_policies AS p
    WHERE p.effective_from <= clock_timestamp()
    ORDER BY p.effective_from DESC, p.policy_id DESC
    LIMIT 1;
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
    INSERT INTO decision_policies (review_threshold, decline_threshold, default_score, rule_scores,
                                   effective_from, set_by)
    VALUES (v_policy.review_threshold, v_policy.decline_threshold, v_policy.default_score,
            v_policy.rule_scores, clock_timestamp(), v_actor)
    RETURNING effective_from INTO v_policy.effective_from;
    RETURN get_decision_policy(v_policy.effective_from);
END;
$$;

COMMENT ON FUNCTION set_decision_policy(jsonb, text) IS
    'New version of the decision policy from now: thresholds and rule scores merged over the current ones; PF001 naming the field, PF004 unknown rule.';

REVOKE ALL ON FUNCTION set_decision_policy(jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION set_decision_policy(jsonb, text) TO pgfraud_app;
