-- rescore_alerts(p_rebuild_state boolean) -> bigint
--
-- Re-scores every stored transaction with the live rules, set-based, so
-- that alerts equal evaluate_account(account, active_rule_parameters()) for
-- every account: run by the trigger on `rules` after any change to them
-- (set_rule, or an UPDATE in psql), and by migrate after 0005 on existing
-- data. Alerts that still fire keep their alert_id (and are not announced
-- again); only new ones are notified. With p_rebuild_state, account_states
-- is first recomputed from `transactions`. Takes the exclusive side of the
-- rule-change lock: it waits for writers that are scoring with the old rules
-- to commit, and new writers wait for it. Returns the number of new alerts.
-- Cost: one pass of the rule code over the whole table (README, Performance).
-- Needs the owner's rights (SECURITY DEFINER; not granted to the service).
CREATE OR REPLACE FUNCTION rescore_alerts(p_rebuild_state boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
SET jit = off
AS $$
DECLARE
    v_account_ids bigint[];
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        -- Its snapshot would miss transactions stored after it began, scored
        -- with the old rules: their alerts would stay as they were.
        RAISE EXCEPTION 'rules can change only in a READ COMMITTED transaction (this one is %)',
                upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'run it outside BEGIN ISOLATION LEVEL REPEATABLE READ or SERIALIZABLE';
    END IF;
    PERFORM pg_advisory_xact_lock(7231546390112208);
    IF p_rebuild_state THEN
        DELETE FROM account_states;
        INSERT INTO account_states (account_id, transaction_count, amount_sum)
        SELECT t.account_id, count(*), sum(t.amount)
        FROM transactions AS t
        GROUP BY t.account_id;
    END IF;
    SELECT coalesce(array_agg(a.account_id ORDER BY a.account_id), '{}')
    INTO v_account_ids
    FROM (SELECT s.account_id FROM account_states AS s
          UNION
          SELECT DISTINCT al.account_id FROM alerts AS al) AS a;
    RETURN _rescore_accounts(
        v_account_ids,
        array_fill('-infinity'::timestamptz, ARRAY[cardinality(v_account_ids)]),
        array_fill(0::bigint, ARRAY[cardinality(v_account_ids)]),
        array_fill(0::bigint, ARRAY[cardinality(v_account_ids)]),
        array_fill(0::numeric, ARRAY[cardinality(v_account_ids)])
    );
END;
$$;

COMMENT ON FUNCTION rescore_alerts(boolean) IS
    'Re-scores all stored transactions with the live rules (after a rule change); p_rebuild_state recomputes account_states first; returns the number of new alerts.';

REVOKE ALL ON FUNCTION rescore_alerts(boolean) FROM PUBLIC;
