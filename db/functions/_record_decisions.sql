-- _record_decisions(p_account_ids bigint[], p_transaction_ids bigint[]) -> bigint
--
-- Decisions (issue 17): called by the scoring trigger
-- (score_changed_transactions) for the rows an INSERT or COPY adds, after
-- their alerts are written, in the same database transaction. For each
-- (p_account_ids[i], p_transaction_ids[i]) it writes one row of
-- `decisions`, made now (decided_at = clock_timestamp()) from:
--   * the transaction's alerts as just scored (the rules see only the
--     history stored before it), each naming the version of its rule that
--     fired (rule_version, issue 18), each fired rule scored by the policy in
--     force (decision_policies: the latest version with effective_from <=
--     decided_at; a rule it does not name scores default_score);
--   * the sum against the policy: decline from decline_threshold, review
--     from review_threshold, approve below (score_outcome);
--   * the list entries in force at decided_at for the account or the
--     merchant: an allow entry forces approve, else a block entry forces
--     decline (outcome).
-- A transaction that already has a decision keeps it (never rewritten: a
-- decision is the record of what was answered). Reads only the judged
-- accounts' rows, the policy and the lists. Holds the shared side of the
-- rule-change lock, which policy and list changes take exclusively, so
-- what was in force at decided_at is exactly what was read.
-- Returns the number of decisions written. Raises nothing of its own.
CREATE OR REPLACE FUNCTION _record_decisions(p_account_ids bigint[], p_transaction_ids bigint[])
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = public, pg_temp
AS $$
DECLARE
    v_at timestamptz;
    v_policy decision_policies;
    v_rules jsonb;
    v_rule_set_id text;
    v_count bigint;
    v_plan_cache_mode text := current_setting('plan_cache_mode');
BEGIN
    IF coalesce(cardinality(p_transaction_ids), 0) = 0 THEN
        RETURN 0;
    END IF;
    -- A few rows (a POST): the session's generic plan, as planning the query
    -- below costs more than running it for one row (measured: 0.6-0.75 ms a
    -- call planned each time). Many (a COPY): planned for the actual sizes.
    -- Restored before returning.
    PERFORM set_config('plan_cache_mode',
                       CASE WHEN cardinality(p_transaction_ids) <= 100 THEN 'force_generic_plan'
                            ELSE 'force_custom_plan' END,
                       true);
    PERFORM pg_advisory_xact_lock_shared(7231546390112208);
    v_at := clock_timestamp();
    SELECT p.* INTO v_policy
    FROM decision_policies AS p
    WHERE p.effective_from <= v_at
    ORDER BY p.effective_from DESC, p.policy_id DESC
    LIMIT 1;
    -- The live rules' parameters, kept in decision_rule_sets by the trigger
    -- on rules (_record_rule_set); named here by their md5.
    v_rules := active_rule_parameters();
    v_rule_set_id := md5(v_rules::text);
    WITH judged AS (
        SELECT t.account_id, t.transaction_id, t.ts, t.amount, t.merchant_id
        FROM unnest(p_account_ids, p_transaction_ids) AS u(account_id, transaction_id)
        JOIN transactions AS t
          ON t.transaction_id = u.transaction_id AND t.account_id = u.account_id
    ),
    fired AS (
        SELECT j.transaction_id,
               jsonb_agg(jsonb_build_object(
                   'rule_id', al.rule_id,
                   'rule_version', al.rule_version,
                   'score', s.score,
                   'observed', al.observed::text,
                   'threshold', al.threshold::text,
                   'reason', al.reason) ORDER BY al.rule_id) AS rules,
               sum(s.score)::integer AS score
        FROM judged AS j
        JOIN alerts AS al
          ON al.account_id = j.account_id AND al.ts = j.ts AND al.transaction_id = j.transaction_id
        CROSS JOIN LATERAL (
            SELECT coalesce((v_policy.rule_scores ->> al.rule_id)::integer, v_policy.default_score)
                AS score
        ) AS s
        GROUP BY j.transaction_id
    ),
    listed AS (
        SELECT j.transaction_id,
               jsonb_agg(jsonb_build_object(
                   'entry_id', e.entry_id,
                   'list_name', l.list_name,
                   'subject', l.subject,
                   'kind', l.kind,
                   'value', e.value,
                   'reason', e.reason,
                   'added_by', e.added_by,
                   'added_at', to_char(e.added_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                   'expires_at', to_char(e.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
                   ORDER BY l.kind, l.list_name, e.entry_id) AS lists,
               bool_or(l.kind = 'allow') AS allowed,
               bool_or(l.kind = 'block') AS blocked
        FROM judged AS j
        CROSS JOIN LATERAL (VALUES ('account', j.account_id), ('merchant', j.merchant_id))
            AS k(subject, value)
        JOIN list_entries AS e ON e.value = k.value
        JOIN lists AS l ON l.list_name = e.list_name AND l.subject = k.subject
        WHERE e.added_at <= v_at
          AND (e.removed_at IS NULL OR e.removed_at > v_at)
          AND (e.expires_at IS NULL OR e.expires_at > v_at)
        GROUP BY j.transaction_id
    ),
    decided AS (
        SELECT j.*, coalesce(f.score, 0) AS score,
               coalesce(f.rules, '[]'::jsonb) AS rules,
               coalesce(li.lists, '[]'::jsonb) AS lists,
               coalesce(li.allowed, false) AS allowed,
               coalesce(li.blocked, false) AS blocked,
               CASE WHEN coalesce(f.score, 0) >= v_policy.decline_threshold THEN 'decline'
                    WHEN coalesce(f.score, 0) >= v_policy.review_threshold THEN 'review'
                    ELSE 'approve' END AS score_outcome
        FROM judged AS j
        LEFT JOIN fired AS f ON f.transaction_id = j.transaction_id
        LEFT JOIN listed AS li ON li.transaction_id = j.transaction_id
    )
    INSERT INTO decisions (account_id, transaction_id, ts, amount, merchant_id, outcome, score,
                           score_outcome, rules, lists, policy_id, rule_set_id, decided_at)
    SELECT d.account_id, d.transaction_id, d.ts, d.amount, d.merchant_id,
           CASE WHEN d.allowed THEN 'approve' WHEN d.blocked THEN 'decline' ELSE d.score_outcome END,
           d.score, d.score_outcome, d.rules, d.lists, v_policy.policy_id, v_rule_set_id, v_at
    FROM decided AS d
    ORDER BY d.account_id, d.transaction_id
    ON CONFLICT ON CONSTRAINT decisions_pkey DO NOTHING;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    PERFORM set_config('plan_cache_mode', v_plan_cache_mode, true);
    RETURN v_count;
END;
$$;

COMMENT ON FUNCTION _record_decisions(bigint[], bigint[]) IS
    'Scoring trigger: writes one decision per new transaction (alerts scored by the policy in force, then allow/block lists), never rewriting one; returns how many.';

REVOKE ALL ON FUNCTION _record_decisions(bigint[], bigint[]) FROM PUBLIC;
