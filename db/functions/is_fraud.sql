-- is_fraud(p_account_id bigint) -> SETOF fraud_event
--
-- The fraudulent events of one account: one row per fired enabled rule per
-- transaction (transaction_id, account_id, ts, amount, rule_id, observed,
-- threshold, reason), in (ts, transaction_id, rule_id) order; no rows when no
-- rule fires. Errors: PF002 (account_not_found) when the account has no
-- transactions.
CREATE OR REPLACE FUNCTION is_fraud(p_account_id bigint)
RETURNS SETOF fraud_event
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_rules jsonb := active_rule_parameters();
BEGIN
    IF NOT EXISTS (SELECT FROM transactions AS t WHERE t.account_id = p_account_id) THEN
        RAISE EXCEPTION 'account % has no transactions', p_account_id
            USING ERRCODE = 'PF002', COLUMN = 'account_id';
    END IF;
    RETURN QUERY
        SELECT e.* FROM evaluate_account(p_account_id, v_rules) AS e;
END;
$$;

COMMENT ON FUNCTION is_fraud(bigint) IS
    'Fraudulent events of one account (fired enabled rules, one row each); raises PF002 if the account has no transactions.';

REVOKE ALL ON FUNCTION is_fraud(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION is_fraud(bigint) TO pgfraud_app, pgfraud_readonly;
