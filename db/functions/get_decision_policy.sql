-- get_decision_policy(p_at timestamptz DEFAULT NULL) -> jsonb
--
-- The decision policy in force at p_at (NULL: now): {policy_id,
-- review_threshold, decline_threshold, default_score, rule_scores:
-- {rule_id: score} for every rule of the catalogue (a rule the version
-- does not name scores default_score), effective_from (ISO 8601 UTC ms;
-- null for the installed default), set_by}. Scores and thresholds are
-- integers: a transaction's score is the sum of the scores of the rules
-- that fire on it; decline from decline_threshold, review from
-- review_threshold, approve below. Raises nothing.
CREATE OR REPLACE FUNCTION get_decision_policy(p_at timestamptz DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql
STABLE
AS $$
    SELECT jsonb_build_object(
        'policy_id', p.policy_id,
        'review_threshold', p.review_threshold,
        'decline_threshold', p.decline_threshold,
        'default_score', p.default_score,
        'rule_scores', (SELECT coalesce(jsonb_object_agg(r.rule_id,
                                            coalesce((p.rule_scores ->> r.rule_id)::integer,
                                                     p.default_score) ORDER BY r.rule_id), '{}')
                        FROM rules AS r),
        'effective_from', CASE WHEN isfinite(p.effective_from)
                               THEN to_char(p.effective_from AT TIME ZONE 'UTC',
                                            'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END,
        'set_by', p.set_by)
    FROM decision_policies AS p
    WHERE p.effective_from <= coalesce(p_at, clock_timestamp())
    ORDER BY p.effective_from DESC, p.policy_id DESC
    LIMIT 1;
$$;

COMMENT ON FUNCTION get_decision_policy(timestamptz) IS
    'The decision policy in force at p_at (NULL: now): thresholds, default_score, every rule''s score, effective_from, set_by.';

REVOKE ALL ON FUNCTION get_decision_policy(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_decision_policy(timestamptz) TO pgfraud_app, pgfraud_readonly;
