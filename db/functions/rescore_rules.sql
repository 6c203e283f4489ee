-- rescore_rules(p_rule_ids text[]) -> bigint
--
-- Makes the alerts of the rules p_rule_ids (and only theirs) equal the rule
-- code's result over every stored transaction with the live rules: run by
-- the trigger on `rules` for the rules a statement changed (enabled,
-- parameters or expression), and for compromised_merchant when fraud_labels
-- is truncated. Rules are independent (each rule's events depend on its own
-- parameters and the data only), so a change of one rule re-scores that
-- rule alone: a rule now off, or gone, loses its alerts; a rule on is
-- computed from scratch (_evaluate_from with only that rule, every account
-- in one pass) and its alerts diffed as rescore_alerts does: alerts that
-- still fire keep their alert_id and are not announced again, changed ones
-- are updated in place, new ones notified (pg_notify 'pgfraud_alerts').
-- Takes the exclusive side of the rule-change lock, like rescore_alerts.
-- Returns the number of new alerts. Unknown rule ids are ignored (their
-- alerts, if any, are deleted). Errors: invalid_transaction_state (25000)
-- outside READ COMMITTED, whose fresh snapshot after the lock is what makes
-- the result see every stored transaction. Needs the owner's rights (SECURITY DEFINER;
-- not granted to the service).
CREATE OR REPLACE FUNCTION rescore_rules(p_rule_ids text[])
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
SET jit = off
SET work_mem = '256MB'
AS $$
DECLARE
    v_rules jsonb;
    v_account_ids bigint[];
    v_new bigint;
BEGIN
    IF coalesce(cardinality(p_rule_ids), 0) = 0 THEN
        RETURN 0;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        -- Its snapshot would miss transactions stored after it began, scored
        -- with the old rules: their alerts would stay as they were.
        RAISE EXCEPTION 'rules can change only in a READ COMMITTED transaction (this one is %)',
                upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'run it outside BEGIN ISOLATION LEVEL REPEATABLE READ or SERIALIZABLE';
    END IF;
    PERFORM pg_advisory_xact_lock(7231546390112208);
    SELECT coalesce(jsonb_object_agg(r.rule_id, r.parameters), '{}')
    INTO v_rules
    FROM rules AS r
    WHERE r.enabled AND r.rule_id = ANY (p_rule_ids);
    IF v_rules = '{}' THEN
        DELETE FROM alerts AS al WHERE al.rule_id = ANY (p_rule_ids);
        RETURN 0;
    END IF;
    v_account_ids := ARRAY(SELECT a.account_id FROM account_states AS a);
    -- EXECUTE: planned for the actual sizes (one scan of transactions, hash
    -- joins for the diff), never a generic plan's loops.
    EXECUTE $query$
        WITH computed AS MATERIALIZED (
            SELECT e.*
            FROM _evaluate_from(
                $1, $2,
                array_fill('-infinity'::timestamptz, ARRAY[cardinality($2)]),
                array_fill(0::bigint, ARRAY[cardinality($2)]),
                array_fill(0::bigint, ARRAY[cardinality($2)]),
                array_fill(0::numeric, ARRAY[cardinality($2)])
            ) AS e
        ),
        removed AS (
            DELETE FROM alerts AS al
            WHERE al.rule_id = ANY ($3)
              AND NOT EXISTS (
                  SELECT FROM computed AS c
                  WHERE c.transaction_id = al.transaction_id
                    AND c.rule_id = al.rule_id
                    AND c.ts = al.ts
              )
        ),
        upserted AS (
            INSERT INTO alerts AS al (transaction_id, account_id, ts, amount, rule_id, observed,
                                      threshold, reason, parameters, rule_version, raised_rule_version)
            SELECT c.transaction_id, c.account_id, c.ts, c.amount, c.rule_id, c.observed,
                   c.threshold, c.reason, $1 -> c.rule_id, ($4 ->> c.rule_id)::integer,
                   ($4 ->> c.rule_id)::integer
            FROM computed AS c
            -- New alert ids in transaction time order (as _rescore_accounts).
            ORDER BY c.ts, c.transaction_id, c.rule_id
            ON CONFLICT ON CONSTRAINT alerts_account_ts_transaction_rule_key DO UPDATE
            SET amount = excluded.amount,
                observed = excluded.observed,
                threshold = excluded.threshold,
                reason = excluded.reason,
                parameters = excluded.parameters,
                rule_version = excluded.rule_version
            WHERE (al.amount, al.observed, al.threshold, al.reason, al.parameters, al.rule_version)
                  IS DISTINCT FROM
                  (excluded.amount, excluded.observed, excluded.threshold, excluded.reason,
                   excluded.parameters, excluded.rule_version)
            RETURNING al.xmax = 0 AS inserted
        )
        SELECT count(*) FILTER (WHERE u.inserted) FROM upserted AS u
    $query$
    INTO v_new
    USING v_rules, v_account_ids, p_rule_ids, _current_rule_versions();
    IF v_new > 0 THEN
        PERFORM pg_notify('pgfraud_alerts', v_new::text);
    END IF;
    RETURN v_new;
END;
$$;

COMMENT ON FUNCTION rescore_rules(text[]) IS
    'Re-scores the stored transactions for these rules only (after they changed): their alerts become the live rules'' result; returns the number of new alerts.';

REVOKE ALL ON FUNCTION rescore_rules(text[]) FROM PUBLIC;
