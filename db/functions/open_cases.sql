-- open_cases() -> trigger
--
-- Statement-level AFTER INSERT trigger on alerts (transition table
-- new_alerts): the alerts a statement adds that no case holds yet, by
-- (account_id, transaction_id, rule_id), join their account's case that is
-- not closed (open or assigned); an account with none gets a new open case.
-- So an account's open alerts form one case, new alerts after its case was
-- closed open a new one, and alerts a re-score writes again (a rule change
-- deletes and re-inserts them) stay in the case that held them, unless that
-- case was closed as withdrawn (migration 0101: no one judged them): they
-- leave it first, and are placed as new. Runs in the
-- database transaction that writes the alerts: every writer of alerts holds
-- the account's account_states row (_rescore_accounts) or the exclusive
-- rule-change lock, so two writers of one account never race here; a case
-- being closed or assigned meanwhile is waited for (FOR SHARE), and a case
-- closed meanwhile is passed over (READ COMMITTED re-check) for a new one.
-- A statement that adds no alert costs one read of an empty transition
-- table. SECURITY DEFINER, fixed search_path: the writer may not write
-- cases. Raises nothing of its own.
CREATE OR REPLACE FUNCTION open_cases()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_account_ids bigint[];
BEGIN
    -- Alerts raised again that a case closed as withdrawn holds leave it: not
    -- an action anyone took, so not audited (case_alerts_audit's WHEN), as
    -- placing alerts in cases is not.
    PERFORM set_config('pgfraud.placing_alerts', 'on', true);
    DELETE FROM case_alerts AS ca
    USING new_alerts AS n, cases AS held
    WHERE ca.account_id = n.account_id
      AND ca.transaction_id = n.transaction_id
      AND ca.rule_id = n.rule_id
      AND held.account_id = ca.account_id
      AND held.case_id = ca.case_id
      AND held.resolution = 'withdrawn';
    PERFORM set_config('pgfraud.placing_alerts', '', true);
    -- Accounts with alerts that no case holds yet, in account_id order (the
    -- order every path locks accounts in).
    SELECT array_agg(DISTINCT n.account_id ORDER BY n.account_id)
    INTO v_account_ids
    FROM new_alerts AS n
    WHERE NOT EXISTS (
        SELECT FROM case_alerts AS ca
        WHERE ca.account_id = n.account_id
          AND ca.transaction_id = n.transaction_id
          AND ca.rule_id = n.rule_id
    );
    IF v_account_ids IS NULL THEN
        RETURN NULL;
    END IF;
    -- Hold the cases that are not closed (a close or assign in progress is
    -- waited for; one that closed meanwhile no longer matches).
    PERFORM
    FROM cases AS c
    WHERE c.account_id = ANY (v_account_ids) AND c.status <> 'closed'
    ORDER BY c.account_id
    FOR SHARE;
    INSERT INTO cases (account_id)
    SELECT a.account_id
    FROM unnest(v_account_ids) AS a(account_id)
    WHERE NOT EXISTS (
        SELECT FROM cases AS c WHERE c.account_id = a.account_id AND c.status <> 'closed'
    )
    ORDER BY a.account_id;
    INSERT INTO case_alerts (account_id, transaction_id, rule_id, case_id)
    SELECT DISTINCT n.account_id, n.transaction_id, n.rule_id, c.case_id
    FROM new_alerts AS n
    JOIN cases AS c ON c.account_id = n.account_id AND c.status <> 'closed'
    WHERE n.account_id = ANY (v_account_ids)
    ON CONFLICT ON CONSTRAINT case_alerts_pkey DO NOTHING;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION open_cases() IS
    'Trigger: alerts no case holds join their account''s open (or assigned) case, or open a new one.';

REVOKE ALL ON FUNCTION open_cases() FROM PUBLIC;

CREATE OR REPLACE TRIGGER alerts_open_cases
    AFTER INSERT ON alerts
    REFERENCING NEW TABLE AS new_alerts
    FOR EACH STATEMENT EXECUTE FUNCTION open_cases();
