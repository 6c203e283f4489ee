-- _decision_json(p_decision decisions) -> jsonb
--
-- A decision as the API shows it: {transaction_id, account_id, timestamp
-- (ISO 8601 UTC, ms), amount (string), merchant_id, outcome, score,
-- score_outcome (what the score alone gave), overruled (true when a list
-- forced another outcome than the score's), rules: [{rule_id, rule_version, score,
-- observed, threshold, reason}], lists: [{entry_id, list_name, subject,
-- kind, value, reason, added_by, added_at, expires_at}], policy:
-- {policy_id, review_threshold, decline_threshold}, rule_set_id,
-- decided_at}. Raises nothing.
CREATE OR REPLACE FUNCTION _decision_json(p_decision decisions)
RETURNS jsonb
LANGUAGE sql
STABLE
AS $$
    SELECT jsonb_build_object(
        'transaction_id', p_decision.transaction_id,
        'account_id', p_decision.account_id,
        'timestamp', to_char(p_decision.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'amount', to_char(p_decision.amount, 'FM9999999999999990.00'),
        'merchant_id', p_decision.merchant_id,
        'outcome', p_decision.outcome,
        'score', p_decision.score,
        'score_outcome', p_decision.score_outcome,
        'overruled', p_decision.outcome <> p_decision.score_outcome,
        'rules', p_decision.rules,
        'lists', p_decision.lists,
        'policy', (SELECT jsonb_build_object('policy_id', p.policy_id,
                                             'review_threshold', p.review_threshold,
                                             'decline_threshold', p.decline_threshold)
                   FROM decision_policies AS p WHERE p.policy_id = p_decision.policy_id),
        'rule_set_id', p_decision.rule_set_id,
        'decided_at', to_char(p_decision.decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
$$;

COMMENT ON FUNCTION _decision_json(decisions) IS
    'A decision as JSON: transaction, outcome, score, score_outcome, overruled, rules, lists, policy, rule_set_id, decided_at.';

REVOKE ALL ON FUNCTION _decision_json(decisions) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _decision_json(decisions) TO pgfraud_app, pgfraud_readonly;
