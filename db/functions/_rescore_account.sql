-- _rescore_account(p_account_id bigint, p_from_ts timestamptz,
--                  p_from_transaction_id bigint) -> bigint
--
-- The per-account path's writer: makes the alerts of one account from the
-- position (p_from_ts, p_from_transaction_id) on, in (ts, transaction_id)
-- order, equal to the rule code's result for the live rules (the text of
-- _account_rule_query, the same rule code the set-based _rescore_accounts
-- runs through _evaluate_from), as _rescore_accounts does for many accounts:
-- alerts no longer raised are deleted, new ones inserted, changed ones
-- updated (alert_id, raised_at and raised_rule_version kept). The base (count
-- and sum of the account's rows before the position) is read from
-- transactions, so account_states is neither read nor needed. Returns the
-- number of new alerts. Every statement is filtered on account_id =
-- p_account_id; no forced generic plan, no NOTIFY (the caller's business).
-- Takes the shared side of the rule-change lock, as _rescore_accounts.
-- Shadow rules, if any, are scored too (through _evaluate_from: exact on one
-- node, the one part of this function Citus cannot route).
-- Without a live merchant rule (_merchant_rules_delay() NULL) the text has
-- no merchant section (_account_rule_query(false)): every read names the
-- account.
-- Raises nothing of its own (XX000 from _account_rule_query).
CREATE OR REPLACE FUNCTION _rescore_account(
    p_account_id bigint,
    p_from_ts timestamptz,
    p_from_transaction_id bigint
)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET jit = off
AS $$
DECLARE
    v_rules jsonb;
    v_versions jsonb;
    v_base_count bigint;
    v_base_sum numeric;
    v_new bigint;
    v_shadow_rules jsonb;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7231546390112208);
    v_rules := active_rule_parameters();
    v_versions := _current_rule_versions();
    SELECT count(*), coalesce(sum(t.amount), 0)
    INTO v_base_count, v_base_sum
    FROM transactions AS t
    WHERE t.account_id = p_account_id
      AND (t.ts, t.transaction_id) < (p_from_ts, p_from_transaction_id);
    EXECUTE format($query$
        WITH computed AS MATERIALIZED (
            %s
        ),
        removed AS (
            DELETE FROM alerts AS al
            WHERE al.account_id = $2
              AND (al.ts, al.transaction_id) >= ($3, $4)
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
                   c.threshold, c.reason, $1 -> c.rule_id, ($7 ->> c.rule_id)::integer,
                   ($7 ->> c.rule_id)::integer
            FROM computed AS c
            WHERE c.account_id = $2
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
    $query$, _account_rule_query(_merchant_rules_delay() IS NOT NULL))
    INTO v_new
    USING v_rules, p_account_id, p_from_ts, p_from_transaction_id, v_base_count, v_base_sum,
          v_versions;
    -- Cases for the new alerts (on one node the alerts trigger did it).
    PERFORM _open_account_cases(p_account_id, p_from_ts);
    -- Shadow rules (issue 18), as _rescore_accounts: the same account from
    -- the same position, into shadow_alerts. Through _evaluate_from itself
    -- (LANGUAGE sql): exact on one node, not routed on Citus (the document).
    SELECT jsonb_object_agg(s.rule_id, s.parameters) INTO v_shadow_rules FROM shadow_rules AS s;
    IF v_shadow_rules IS NOT NULL THEN
        PERFORM _score_shadow_rules(v_shadow_rules, ARRAY[p_account_id], ARRAY[p_from_ts],
                                    ARRAY[p_from_transaction_id], ARRAY[p_account_id],
                                    ARRAY[p_from_ts], ARRAY[p_from_transaction_id],
                                    ARRAY[v_base_count], ARRAY[v_base_sum]);
    END IF;
    RETURN v_new;
END;
$$;

COMMENT ON FUNCTION _rescore_account(bigint, timestamptz, bigint) IS
    'Per-account scoring: makes one account''s alerts from the position (ts, transaction_id) on equal the rule code''s result (the shared _account_rule_query text); returns the number of new alerts.';

REVOKE ALL ON FUNCTION _rescore_account(bigint, timestamptz, bigint) FROM PUBLIC;
