-- _open_account_cases(p_account_id bigint, p_from_ts timestamptz) -> bigint
--
-- The per-account path's case opener (issue 19): what the alerts trigger
-- open_cases does for the alerts a statement inserted, for one account's
-- alerts with ts >= p_from_ts that no case holds yet (or only a case closed
-- as withdrawn, which they leave): they join the account's open (or
-- assigned) case, or a new case is opened for them.
-- _rescore_account calls it after writing the account's alerts. On one node
-- the trigger has already placed every new alert, so it finds none; on
-- Citus, where `pgfraud db distribute` turns that trigger off (a statement
-- trigger runs per shard on a worker and cannot read other tables there),
-- it is what opens cases. Every statement is filtered on account_id =
-- p_account_id, so Citus routes it to the account's shard.
-- Returns the number of alerts placed in a case. Raises nothing of its own.
CREATE OR REPLACE FUNCTION _open_account_cases(p_account_id bigint, p_from_ts timestamptz)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = public, pg_temp
AS $$
DECLARE
    v_case_id bigint;
    v_count bigint;
BEGIN
    IF NOT EXISTS (
        SELECT FROM alerts AS al
        WHERE al.account_id = p_account_id
          AND al.ts >= p_from_ts
          AND NOT EXISTS (
              SELECT FROM case_alerts AS ca
              JOIN cases AS held ON held.account_id = ca.account_id AND held.case_id = ca.case_id
              WHERE ca.account_id = p_account_id
                AND ca.transaction_id = al.transaction_id
                AND ca.rule_id = al.rule_id
                AND held.resolution IS DISTINCT FROM 'withdrawn')
    ) THEN
        RETURN 0;
    END IF;
    -- Hold the account's case that is not closed, as open_cases does.
    SELECT c.case_id INTO v_case_id
    FROM cases AS c
    WHERE c.account_id = p_account_id AND c.status <> 'closed'
    ORDER BY c.case_id
    LIMIT 1
    FOR SHARE;
    IF v_case_id IS NULL THEN
        INSERT INTO cases (account_id) VALUES (p_account_id)
        RETURNING case_id INTO v_case_id;
    END IF;
    INSERT INTO case_alerts (account_id, transaction_id, rule_id, case_id)
    SELECT al.account_id, al.transaction_id, al.rule_id, v_case_id
    FROM alerts AS al
    WHERE al.account_id = p_account_id
      AND al.ts >= p_from_ts
      AND NOT EXISTS (
          SELECT FROM case_alerts AS ca
          JOIN cases AS held ON held.account_id = ca.account_id AND held.case_id = ca.case_id
          WHERE ca.account_id = p_account_id
            AND ca.transaction_id = al.transaction_id
            AND ca.rule_id = al.rule_id
            AND held.resolution IS DISTINCT FROM 'withdrawn')
    ON CONFLICT ON CONSTRAINT case_alerts_pkey DO UPDATE
        -- only the alerts of a withdrawn case meet a row: they move
        SET case_id = EXCLUDED.case_id, added_at = EXCLUDED.added_at;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;

COMMENT ON FUNCTION _open_account_cases(bigint, timestamptz) IS
    'Per-account path: one account''s alerts from p_from_ts that no case holds join its open case (or a new one), as the open_cases trigger does; returns how many.';

REVOKE ALL ON FUNCTION _open_account_cases(bigint, timestamptz) FROM PUBLIC;
