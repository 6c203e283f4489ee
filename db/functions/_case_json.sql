-- _case_json(p_case cases) -> jsonb
--
-- A case as the API shows it: {case_id, account_id, status (open, assigned,
-- closed), assignee, assigned_by, assigned_at, resolution (fraud,
-- not_fraud; null until closed), note (null until closed, as resolution;
-- "" for a case closed without one), opened_at, closed_at, closed_by,
-- alert_count (how many alerts it holds), alerts_raised (how many of them are
-- still raised: a rule change or a late row can re-score an alert away, and
-- the case keeps it, shown as no longer raised), transaction_count (how many
-- distinct transactions they are on)}; times ISO 8601 UTC with milliseconds and Z,
-- null when not set. Raises nothing.
CREATE OR REPLACE FUNCTION _case_json(p_case cases)
RETURNS jsonb
LANGUAGE plpgsql  -- not sql: Citus plans no parameterised SQL function over its tables
STABLE
AS $$
DECLARE
    v_alerts bigint;
    v_raised bigint;
    v_transactions bigint;
BEGIN
    SELECT count(*),
           count(*) FILTER (WHERE EXISTS (
               SELECT FROM alerts AS a
               WHERE a.account_id = ca.account_id
                 AND a.transaction_id = ca.transaction_id
                 AND a.rule_id = ca.rule_id)),
           count(DISTINCT ca.transaction_id)
    INTO v_alerts, v_raised, v_transactions
    FROM case_alerts AS ca
    WHERE ca.account_id = p_case.account_id AND ca.case_id = p_case.case_id;
    RETURN jsonb_build_object(
        'case_id', p_case.case_id,
        'account_id', p_case.account_id,
        'status', p_case.status,
        'assignee', p_case.assignee,
        'assigned_by', p_case.assigned_by,
        'assigned_at', to_char(p_case.assigned_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'resolution', p_case.resolution,
        'note', CASE WHEN p_case.status = 'closed' THEN p_case.note END,
        'opened_at', to_char(p_case.opened_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'closed_at', to_char(p_case.closed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'closed_by', p_case.closed_by,
        'alert_count', v_alerts,
        'alerts_raised', v_raised,
        'transaction_count', v_transactions);
END;
$$;

COMMENT ON FUNCTION _case_json(cases) IS
    'A case as JSON: case_id, account_id, status, assignee, assigned_by/at, resolution, note, opened_at, closed_at/by, alert_count, alerts_raised (still raised), transaction_count.';

REVOKE ALL ON FUNCTION _case_json(cases) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _case_json(cases) TO pgfraud_app, pgfraud_readonly;
