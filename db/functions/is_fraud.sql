-- is_fraud(p_account_id bigint) -> SETOF fraud_event
-- is_fraud(p_account_id bigint, p_limit integer, p_after_ts timestamptz,
--          p_after_transaction_id bigint, p_after_rule_id text) -> SETOF fraud_event
--
-- The fraudulent events of one account: one row per fired enabled rule per
-- transaction (transaction_id, account_id, ts, amount, rule_id, observed,
-- threshold, reason), in (ts, transaction_id, rule_id) order; no rows when no
-- rule fires. Reads the alerts persisted when the transactions were stored
-- (no recomputation: an index range scan, whatever the account's size); they
-- equal evaluate_account(p_account_id, active_rule_parameters()) at every
-- commit. The paged form returns at most p_limit (1..100000; NULL: all) rows after the
-- position (p_after_ts, p_after_transaction_id, p_after_rule_id) (NULLs:
-- from the start).
-- Errors: PF002 (account_not_found) when the account has no transactions;
-- PF001 (invalid_input) for a limit out of range or a partial position.
CREATE OR REPLACE FUNCTION is_fraud(
    p_account_id bigint,
    p_limit integer,
    p_after_ts timestamptz DEFAULT NULL,
    p_after_transaction_id bigint DEFAULT NULL,
    p_after_rule_id text DEFAULT NULL
)
RETURNS SETOF fraud_event
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    IF p_limit IS NOT NULL AND (p_limit < 1 OR p_limit > 100000) THEN
        RAISE EXCEPTION 'limit must be between 1 and 100000' USING ERRCODE = 'PF001', COLUMN = 'limit';
    END IF;
    IF (p_after_ts IS NULL) <> (p_after_transaction_id IS NULL)
       OR (p_after_ts IS NULL) <> (p_after_rule_id IS NULL) THEN
        RAISE EXCEPTION 'a position needs its time, transaction id and rule id'
            USING ERRCODE = 'PF001', COLUMN = 'after';
    END IF;
    IF NOT EXISTS (SELECT FROM account_states AS a WHERE a.account_id = p_account_id) THEN
        RAISE EXCEPTION 'account % has no transactions', p_account_id
            USING ERRCODE = 'PF002', COLUMN = 'account_id';
    END IF;
    -- Two queries, so that each is one index range scan of alerts.
    IF p_after_ts IS NULL THEN
        RETURN QUERY
            SELECT al.transaction_id, al.account_id, al.ts, al.amount, al.rule_id, al.observed,
                   al.threshold, al.reason
            FROM alerts AS al
            WHERE al.account_id = p_account_id
            ORDER BY al.ts, al.transaction_id, al.rule_id
            LIMIT p_limit;
    ELSE
        RETURN QUERY
            SELECT al.transaction_id, al.account_id, al.ts, al.amount, al.rule_id, al.observed,
                   al.threshold, al.reason
            FROM alerts AS al
            WHERE al.account_id = p_account_id
              AND (al.ts, al.transaction_id, al.rule_id)
                  > (p_after_ts, p_after_transaction_id, p_after_rule_id)
            ORDER BY al.ts, al.transaction_id, al.rule_id
            LIMIT p_limit;
    END IF;
END;
$$;

COMMENT ON FUNCTION is_fraud(bigint, integer, timestamptz, bigint, text) IS
    'A page of an account''s fraudulent events (persisted alerts) after a (ts, transaction_id, rule_id) position; PF002 if the account has no transactions, PF001 for a bad limit.';

REVOKE ALL ON FUNCTION is_fraud(bigint, integer, timestamptz, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION is_fraud(bigint, integer, timestamptz, bigint, text)
    TO pgfraud_app, pgfraud_readonly;

CREATE OR REPLACE FUNCTION is_fraud(p_account_id bigint)
RETURNS SETOF fraud_event
LANGUAGE sql
STABLE
AS $$
    SELECT * FROM is_fraud(p_account_id, NULL);
$$;

COMMENT ON FUNCTION is_fraud(bigint) IS
    'Fraudulent events of one account (persisted alerts of the enabled rules, one row each); raises PF002 if the account has no transactions.';

REVOKE ALL ON FUNCTION is_fraud(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION is_fraud(bigint) TO pgfraud_app, pgfraud_readonly;
