-- score_transactions(p_from timestamptz, p_to timestamptz, p_rules jsonb,
--                    p_recompute boolean) -> SETOF fraud_event
--
-- Batch scoring: the events of every account whose transaction time is in
-- [p_from, p_to) (NULL: unbounded), for the rules p_rules (default: the
-- enabled rules of the `rules` table), exactly what evaluate_account
-- returns per account (history before p_from is still seen). Rows in
-- (account_id, ts, transaction_id, rule_id) order.
--
-- Two sources, one result:
--   * a rule of p_rules that is live (enabled) with exactly these
--     parameters (the same normalised JSON as `rules.parameters`) has its
--     events already in `alerts`: scoring on arrival keeps them equal to the
--     rule code's result at every commit (tests/test_batch_scoring.py).
--     They are read, an index or sequential scan of `alerts`;
--   * every other rule (a backtest's candidate parameters, a disabled rule)
--     runs through the one rule code (_evaluate_from) from scratch, all
--     accounts in one set-based pass.
-- Rules are independent (each rule's events depend on its own parameters
-- and the data only), so the two parts are simply put together. With
-- p_recompute every rule runs from scratch (a check of the alerts, or a
-- measure of the rule code's cost: README, Performance).
-- Errors: PF001 (invalid_input) from validate_rules for p_rules that are not
-- valid. p_from/p_to are timestamptz: give them with an offset (or as
-- timestamptz values); a literal without one is read in the session's
-- TimeZone by PostgreSQL before this function is called.
-- On Citus (_is_distributed) the rules that run from scratch run per
-- account (the text of _account_rule_query without the merchant section,
-- each account's statement routed to its worker); a rule reading the
-- merchant features among them is refused (PF001, column rules).
-- The three-argument form of earlier releases (dropped by migration 0010) is
-- dropped on every migrate too: an older release's migrate re-creates it,
-- and two forms make every call ambiguous.
DROP FUNCTION IF EXISTS score_transactions(timestamptz, timestamptz, jsonb);

CREATE OR REPLACE FUNCTION score_transactions(
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_rules jsonb DEFAULT NULL,
    p_recompute boolean DEFAULT false
)
RETURNS SETOF fraud_event
LANGUAGE plpgsql
STABLE
SET jit = off
SET work_mem = '256MB'
AS $$
DECLARE
    v_rules jsonb := coalesce(validate_rules(p_rules), active_rule_parameters());
    -- The rules whose events are the persisted alerts.
    v_stored text[] := ARRAY(
        SELECT r.rule_id
        FROM rules AS r
        WHERE r.enabled
          AND NOT coalesce(p_recompute, false)
          AND (v_rules -> r.rule_id)::text = r.parameters::text
        ORDER BY r.rule_id
    );
    -- The rules that run from scratch.
    v_fresh jsonb := v_rules - v_stored;
    v_account_ids bigint[];
    v_enable_sort text;
    v_query text;
    v_account_id bigint;
BEGIN
    IF v_fresh = '{}' THEN
        -- The order asked for is the order of alerts' unique index: read it
        -- in order rather than sort the rows (1.5M alerts at 10M
        -- transactions: 0.8 s against 2.7 s for a scan and a sort that
        -- spills to disk, EXPLAIN ANALYZE).
        v_enable_sort := current_setting('enable_sort');
        PERFORM set_config('enable_sort', 'off', true);
        RETURN QUERY
            SELECT al.transaction_id, al.account_id, al.ts, al.amount, al.rule_id, al.observed,
                   al.threshold, al.reason
            FROM alerts AS al
            WHERE al.rule_id = ANY(v_stored)
              AND (p_from IS NULL OR al.ts >= p_from)
              AND (p_to IS NULL OR al.ts < p_to)
            ORDER BY al.account_id, al.ts, al.transaction_id, al.rule_id;
        PERFORM set_config('enable_sort', v_enable_sort, true);
        RETURN;
    END IF;
    IF _is_distributed() THEN
        -- Citus: the rule code runs per account (_account_rule_query, each
        -- statement routed to the account's worker), accounts in order.
        IF v_fresh ? 'compromised_merchant' OR EXISTS (
               SELECT FROM rules AS r
               WHERE v_fresh ? r.rule_id AND r.expression IS NOT NULL
                 AND _reads_merchant_features(r.expression)) THEN
            RAISE EXCEPTION 'rules reading other accounts'' rows at a merchant are not scored on pgfraud''s Citus layout'
                USING ERRCODE = 'PF001', COLUMN = 'rules';
        END IF;
        v_query := _account_rule_query(false);
        FOR v_account_id IN SELECT a.account_id FROM account_states AS a ORDER BY a.account_id LOOP
            RETURN QUERY EXECUTE format($query$
                SELECT s.*
                FROM (
                    SELECT al.transaction_id, al.account_id, al.ts, al.amount, al.rule_id,
                           al.observed, al.threshold, al.reason
                    FROM alerts AS al
                    WHERE al.account_id = $2
                      AND al.rule_id = ANY($9)
                      AND ($7::timestamptz IS NULL OR al.ts >= $7)
                      AND ($8::timestamptz IS NULL OR al.ts < $8)
                    UNION ALL
                    SELECT e.*
                    FROM (%s) AS e
                    WHERE ($7::timestamptz IS NULL OR e.ts >= $7)
                      AND ($8::timestamptz IS NULL OR e.ts < $8)
                ) AS s
                ORDER BY s.ts, s.transaction_id, s.rule_id
            $query$, v_query)
            USING v_fresh, v_account_id, '-infinity'::timestamptz, 0::bigint, 0::bigint,
                  0::numeric, p_from, p_to, v_stored;
        END LOOP;
        RETURN;
    END IF;
    -- Every account with a stored transaction, from the running state (one
    -- row per account) rather than a pass over transactions.
    v_account_ids := ARRAY(SELECT a.account_id FROM account_states AS a);
    -- EXECUTE plans with the arrays' values, so the planner knows how many
    -- accounts there are: it reads transactions in one scan and hashes it
    -- to the accounts (0.6 s at 1M rows) instead of an index range scan per
    -- account (1.2 s), which is what it picks for an array of unknown size.
    RETURN QUERY EXECUTE $query$
        SELECT s.*
        FROM (
            SELECT al.transaction_id, al.account_id, al.ts, al.amount, al.rule_id, al.observed,
                   al.threshold, al.reason
            FROM alerts AS al
            WHERE al.rule_id = ANY($5)
              AND ($3::timestamptz IS NULL OR al.ts >= $3)
              AND ($4::timestamptz IS NULL OR al.ts < $4)
            UNION ALL
            SELECT e.*
            FROM _evaluate_from(
                $1, $2,
                array_fill('-infinity'::timestamptz, ARRAY[cardinality($2)]),
                array_fill(0::bigint, ARRAY[cardinality($2)]),
                array_fill(0::bigint, ARRAY[cardinality($2)]),
                array_fill(0::numeric, ARRAY[cardinality($2)])
            ) AS e
            WHERE ($3::timestamptz IS NULL OR e.ts >= $3)
              AND ($4::timestamptz IS NULL OR e.ts < $4)
        ) AS s
        ORDER BY s.account_id, s.ts, s.transaction_id, s.rule_id
    $query$
    USING v_fresh, v_account_ids, p_from, p_to, v_stored;
END;
$$;

COMMENT ON FUNCTION score_transactions(timestamptz, timestamptz, jsonb, boolean) IS
    'Events of all accounts with transaction time in [p_from, p_to), exactly as is_fraud per account; p_rules overrides the live rule parameters (backtest): live rules are read from alerts, others computed; p_recompute computes every rule from scratch.';

REVOKE ALL ON FUNCTION score_transactions(timestamptz, timestamptz, jsonb, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION score_transactions(timestamptz, timestamptz, jsonb, boolean)
    TO pgfraud_app, pgfraud_readonly;
