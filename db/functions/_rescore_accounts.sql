-- _rescore_accounts(p_account_ids bigint[], p_from_ts timestamptz[],
--                   p_from_transaction_ids bigint[], p_delta_counts bigint[],
--                   p_delta_sums numeric[], p_until_ts timestamptz[] DEFAULT NULL,
--                   p_until_transaction_ids bigint[] DEFAULT NULL) -> bigint
--
-- Scoring on arrival, called by the trigger on `transactions` in the
-- database transaction that changed it. For each account i whose rows
-- changed (added, removed or altered) at or after the position
-- (p_from_ts[i], p_from_transaction_ids[i]), with p_delta_counts[i] rows and
-- p_delta_sums[i] of amount more than before (negative for removals), and
-- optionally a bound (p_until_ts[i], p_until_transaction_ids[i]) after which
-- nothing it reads changed (a merchant neighbour: only its rows within the
-- merchant rules' reach of the change can read it; NULL, or arrays left
-- out: to the end; only for zero deltas):
--   1. account_states gets the deltas, and every given account's row is
--      locked, in account_id order, in one statement, before any alert is
--      touched (zero deltas included: an account re-scored because another
--      account's row, label or review at a merchant changed). Every path
--      that writes alerts comes through here (or holds the exclusive
--      rule-change lock), so concurrent writers of one account queue up in
--      one order and never deadlock on alert rows;
--   2. the rows from the position on (up to the bound) are scored by the rule code
--      (_evaluate_from) with the live rules, given the totals before the
--      position (running totals minus those rows): a row stored after all
--      others reads only itself, its predecessor and its velocity window;
--      a late arrival re-scores the rows after it;
--   3. the account's alerts from the position on (up to the bound) become exactly that
--      result: alerts that no longer fire are deleted, new ones inserted,
--      changed ones updated in place (same alert_id), unchanged ones kept
--      (when no alert exists from the positions on, as for rows appended in
--      time order, the result is simply inserted);
--   4. pg_notify('pgfraud_alerts', <number of new alerts>) when any is new
--      (delivered at commit).
-- Accounts must be distinct. Returns the number of new alerts. Holds the
-- shared side of the rule-change lock (see rescore_alerts), so rules cannot
-- change between reading them and committing their alerts.
CREATE OR REPLACE FUNCTION _rescore_accounts(
    p_account_ids bigint[],
    p_from_ts timestamptz[],
    p_from_transaction_ids bigint[],
    p_delta_counts bigint[],
    p_delta_sums numeric[],
    p_until_ts timestamptz[] DEFAULT NULL,
    p_until_transaction_ids bigint[] DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
-- JIT compiles the big set-based queries at a cost (seconds) that their run
-- rarely earns back here (measured: a 5,000-row store 5.4 s with it, 1.9 s
-- without).
SET jit = off
AS $$
DECLARE
    v_rules jsonb;
    v_versions jsonb;
    v_shadow_rules jsonb;
    v_account_ids bigint[];
    v_from_ts timestamptz[];
    v_from_transaction_ids bigint[];
    v_base_counts bigint[];
    v_base_sums numeric[];
    v_until_ts timestamptz[];
    v_until_transaction_ids bigint[];
    v_new bigint;
    v_existing boolean;
    v_scored_rows bigint;
    v_plan_cache_mode text := current_setting('plan_cache_mode');
    v_work_mem text := current_setting('work_mem');
BEGIN
    IF cardinality(p_account_ids) IS NULL OR cardinality(p_account_ids) = 0 THEN
        RETURN 0;
    END IF;
    -- A few accounts (a POST): reuse the session's generic plans, as planning
    -- the rule code costs more than running it for one row. Many (a COPY, a
    -- rule change): plan for the actual sizes. Restored before returning.
    PERFORM set_config('plan_cache_mode',
                       CASE WHEN cardinality(p_account_ids) <= 100 THEN 'force_generic_plan'
                            ELSE 'force_custom_plan' END,
                       true);
    -- Many accounts: sorts of the window pass stay in memory.
    IF cardinality(p_account_ids) > 100 THEN
        PERFORM set_config('work_mem', '256MB', true);
    END IF;
    PERFORM pg_advisory_xact_lock_shared(7231546390112208);

    -- ON CONFLICT DO UPDATE locks each conflicting row even where its WHERE
    -- is false (a zero delta: locked, not rewritten), in the order of the
    -- SELECT. An account with no row and a zero delta gets (0, 0), removed
    -- just below.
    INSERT INTO account_states AS a (account_id, transaction_count, amount_sum)
    SELECT d.account_id, d.delta_count, d.delta_sum
    FROM unnest(p_account_ids, p_delta_counts, p_delta_sums) AS d(account_id, delta_count, delta_sum)
    ORDER BY d.account_id
    ON CONFLICT ON CONSTRAINT account_states_pkey DO UPDATE
    SET transaction_count = a.transaction_count + excluded.transaction_count,
        amount_sum = a.amount_sum + excluded.amount_sum
    WHERE excluded.transaction_count <> 0 OR excluded.amount_sum <> 0;
    DELETE FROM account_states AS a
    WHERE a.account_id = ANY (p_account_ids) AND a.transaction_count = 0;

    -- Totals before each position: running totals minus the rows from it on;
    -- nothing to read for an account whose every row came in this change (a
    -- new account, a load into an empty table): its base is 0.
    SELECT array_agg(s.account_id), array_agg(s.from_ts), array_agg(s.from_transaction_id),
           array_agg(coalesce(a.transaction_count - r.row_count, 0)),
           array_agg(coalesce(a.amount_sum - r.amount_sum, 0)),
           sum(coalesce(r.row_count, a.transaction_count)),
           array_agg(s.until_ts), array_agg(s.until_transaction_id)
    INTO v_account_ids, v_from_ts, v_from_transaction_ids, v_base_counts, v_base_sums,
         v_scored_rows, v_until_ts, v_until_transaction_ids
    FROM unnest(p_account_ids, p_from_ts, p_from_transaction_ids, p_delta_counts, p_until_ts,
                p_until_transaction_ids)
        AS s(account_id, from_ts, from_transaction_id, delta_count, until_ts, until_transaction_id)
    JOIN account_states AS a ON a.account_id = s.account_id
    LEFT JOIN LATERAL (
        SELECT count(*) AS row_count, coalesce(sum(t.amount), 0) AS amount_sum
        FROM transactions AS t
        WHERE t.account_id = s.account_id
          AND (t.ts, t.transaction_id) >= (s.from_ts, s.from_transaction_id)
          AND a.transaction_count <> s.delta_count
        HAVING a.transaction_count <> s.delta_count
    ) AS r ON true;

    v_rules := active_rule_parameters();
    -- Rule versions (issue 18): each alert names its rule's version, read
    -- here once for the statement.
    v_versions := _current_rule_versions();
    -- Few rows to score against the table (arrivals, even a batch of
    -- thousands over as many accounts): the generic plan, an index range
    -- scan per account; planned for the actual sizes instead, the window
    -- estimate (a third of each account's rows) made a 5,000-row POST hash
    -- the whole table (0.34 s of its 0.49 s at 1M rows). Many (a load into
    -- an empty table, a rule change): planned for the actual sizes.
    IF v_scored_rows <= greatest(1000, (SELECT c.reltuples FROM pg_class AS c
                                         WHERE c.oid = 'transactions'::regclass) / 20) THEN
        PERFORM set_config('plan_cache_mode', 'force_generic_plan', true);
    ELSE
        PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
    END IF;
    -- Rows appended after every alert of their accounts (the usual arrival,
    -- and a load into an empty table) have no alerts to compare with: insert.
    SELECT EXISTS (
        SELECT FROM unnest(p_account_ids, p_from_ts, p_from_transaction_ids, p_until_ts,
                           p_until_transaction_ids)
            AS s(account_id, from_ts, from_transaction_id, until_ts, until_transaction_id)
        JOIN alerts AS al
          ON al.account_id = s.account_id
         AND (al.ts, al.transaction_id) >= (s.from_ts, s.from_transaction_id)
         AND (s.until_ts IS NULL
              OR (al.ts, al.transaction_id) <= (s.until_ts, s.until_transaction_id))
    ) INTO v_existing;
    IF NOT v_existing THEN
        INSERT INTO alerts (transaction_id, account_id, ts, amount, rule_id, observed,
                            threshold, reason, parameters, rule_version, raised_rule_version)
        SELECT e.transaction_id, e.account_id, e.ts, e.amount, e.rule_id, e.observed,
               e.threshold, e.reason, v_rules -> e.rule_id, (v_versions ->> e.rule_id)::integer,
               (v_versions ->> e.rule_id)::integer
        FROM _evaluate_from(v_rules, coalesce(v_account_ids, '{}'), coalesce(v_from_ts, '{}'),
                            coalesce(v_from_transaction_ids, '{}'), coalesce(v_base_counts, '{}'),
                            coalesce(v_base_sums, '{}'), v_until_ts, v_until_transaction_ids) AS e
        -- New alert ids in transaction time order (the rule code's rows come
        -- in no order): the queue's raise order (alert_id) is then time
        -- order within one statement, not account order.
        ORDER BY e.ts, e.transaction_id, e.rule_id;
        GET DIAGNOSTICS v_new = ROW_COUNT;
    ELSE
        -- Many rows to re-score (a late arrival into a big account, a rule
        -- change): planned for the actual sizes, as the anti-join below must
        -- be a hash join, never a loop. A few (a POST a little out of time
        -- order): the generic plan, as planning costs more than the run
        -- (1.5 ms a call, most of a single-row POST).
        IF v_scored_rows > 1000 THEN
            PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
        END IF;
        WITH computed AS MATERIALIZED (
            SELECT e.*
            FROM _evaluate_from(v_rules, coalesce(v_account_ids, '{}'), coalesce(v_from_ts, '{}'),
                                coalesce(v_from_transaction_ids, '{}'), coalesce(v_base_counts, '{}'),
                                coalesce(v_base_sums, '{}'), v_until_ts,
                                v_until_transaction_ids) AS e
        ),
        removed AS (
            DELETE FROM alerts AS al
            USING unnest(p_account_ids, p_from_ts, p_from_transaction_ids, p_until_ts,
                         p_until_transaction_ids)
                AS s(account_id, from_ts, from_transaction_id, until_ts, until_transaction_id)
            WHERE al.account_id = s.account_id
              AND (al.ts, al.transaction_id) >= (s.from_ts, s.from_transaction_id)
              AND (s.until_ts IS NULL
                   OR (al.ts, al.transaction_id) <= (s.until_ts, s.until_transaction_id))
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
                   c.threshold, c.reason, v_rules -> c.rule_id, (v_versions ->> c.rule_id)::integer,
                   (v_versions ->> c.rule_id)::integer
            FROM computed AS c
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
        SELECT count(*) FILTER (WHERE u.inserted) INTO v_new FROM upserted AS u;
    END IF;

    -- Shadow rules (issue 18): the same accounts from the same positions,
    -- into shadow_alerts (one small read when there is none).
    SELECT jsonb_object_agg(s.rule_id, s.parameters) INTO v_shadow_rules FROM shadow_rules AS s;
    IF v_shadow_rules IS NOT NULL THEN
        PERFORM _score_shadow_rules(v_shadow_rules, p_account_ids, p_from_ts, p_from_transaction_ids,
                                    coalesce(v_account_ids, '{}'), coalesce(v_from_ts, '{}'),
                                    coalesce(v_from_transaction_ids, '{}'),
                                    coalesce(v_base_counts, '{}'), coalesce(v_base_sums, '{}'),
                                    p_until_ts, p_until_transaction_ids, v_until_ts,
                                    v_until_transaction_ids);
    END IF;

    PERFORM set_config('plan_cache_mode', v_plan_cache_mode, true);
    PERFORM set_config('work_mem', v_work_mem, true);
    IF v_new > 0 THEN
        PERFORM pg_notify('pgfraud_alerts', v_new::text);
    END IF;
    RETURN v_new;
END;
$$;

COMMENT ON FUNCTION _rescore_accounts(bigint[], timestamptz[], bigint[], bigint[], numeric[], timestamptz[], bigint[]) IS
    'Scoring on arrival: updates account_states by the deltas and makes each account''s alerts from the given position on equal the rule code''s result; returns the number of new alerts.';

REVOKE ALL ON FUNCTION _rescore_accounts(bigint[], timestamptz[], bigint[], bigint[], numeric[], timestamptz[], bigint[]) FROM PUBLIC;
