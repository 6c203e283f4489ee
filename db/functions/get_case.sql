-- get_case(p_case_id bigint) -> jsonb
--
-- One case (_case_json) with its alerts: "alerts": [{transaction_id,
-- rule_id, timestamp, amount (string), alert_id, observed, threshold
-- (strings), reason, raised (false when re-scoring has since removed the
-- alert: then alert_id, observed, threshold and reason are null),
-- review_status (the transaction's latest review: unreviewed,
-- confirmed_fraud, false_positive)}] in transaction time order (then
-- transaction_id, rule_id). Errors: PF040 (case_not_found), COLUMN
-- case_id, when there is no such case.
CREATE OR REPLACE FUNCTION get_case(p_case_id bigint)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_case cases;
BEGIN
    SELECT c.* INTO v_case FROM cases AS c WHERE c.case_id = p_case_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'there is no case %', p_case_id USING ERRCODE = 'PF040', COLUMN = 'case_id';
    END IF;
    RETURN _case_json(v_case) || jsonb_build_object('alerts', coalesce((
        SELECT jsonb_agg(jsonb_build_object(
                   'transaction_id', ca.transaction_id,
                   'rule_id', ca.rule_id,
                   'timestamp', to_char(t.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                   'amount', to_char(t.amount, 'FM9999999999999990.00'),
                   'alert_id', al.alert_id,
                   'observed', al.observed::text,
                   'threshold', al.threshold::text,
                   'reason', al.reason,
                   'raised', al.alert_id IS NOT NULL,
                   'review_status', coalesce(r.status, 'unreviewed'))
                   ORDER BY t.ts, ca.transaction_id, ca.rule_id)
        FROM case_alerts AS ca
        JOIN transactions AS t ON t.transaction_id = ca.transaction_id AND t.account_id = ca.account_id
        LEFT JOIN alerts AS al
          ON al.account_id = ca.account_id AND al.ts = t.ts
         AND al.transaction_id = ca.transaction_id AND al.rule_id = ca.rule_id
        LEFT JOIN LATERAL (
            SELECT rv.status FROM reviews AS rv
            WHERE rv.account_id = ca.account_id AND rv.transaction_id = ca.transaction_id
            ORDER BY rv.review_id DESC LIMIT 1
        ) AS r ON true
        WHERE ca.account_id = v_case.account_id AND ca.case_id = v_case.case_id
    ), '[]'::jsonb));
END;
$$;

COMMENT ON FUNCTION get_case(bigint) IS
    'One case with its alerts (transaction, rule, time, amount, observed, threshold, reason, raised, review_status); PF040 when there is no such case.';

REVOKE ALL ON FUNCTION get_case(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_case(bigint) TO pgfraud_app, pgfraud_readonly;
