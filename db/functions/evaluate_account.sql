-- evaluate_account(p_account_id bigint, p_rules jsonb) -> SETOF fraud_event
--
-- The rule code, written once: every rule of p_rules that fires on every
-- transaction of one account. p_rules maps rule_id -> parameters object, for
-- the rules to run (a rule absent from it does not run); is_fraud passes the
-- enabled rules of the `rules` table (active_rule_parameters()), a backtest
-- passes candidate parameters.
--
-- Event time, never look-ahead: a transaction is judged only against the same
-- account's transactions strictly before it, ordered by (ts, transaction_id).
-- Windows are elapsed time. Comparisons are exact numeric arithmetic
-- (amount x n < factor x sum, never a rounded average); the threshold shown is
-- rounded to 4 decimal places.
--
-- Rules (parameters):
--   below_average (factor, min_history): amount < factor x prior average.
--   amount_spike (multiplier, min_history): amount > multiplier x prior average.
--   large_amount (threshold): amount >= threshold (currency units).
--   velocity (window_seconds, max_transactions): transactions in
--       (ts - window, ts], this one included, > max_transactions.
--   rapid_succession (min_gap_seconds): ts - previous ts < min_gap_seconds.
-- Rows are in (ts, transaction_id, rule_id) order.
-- Errors: PF001 (invalid_input) from validate_rules for p_rules that are not
-- valid (unknown rule or parameter, missing, wrong type, out of range).
CREATE OR REPLACE FUNCTION evaluate_account(p_account_id bigint, p_rules jsonb)
RETURNS SETOF fraud_event
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$
    WITH parameters AS MATERIALIZED (
        -- Read once per call (not once per row), typed in one place.
        SELECT
            p_rules ? 'below_average' AS below_average_on,
            (p_rules #>> '{below_average,factor}')::numeric AS below_average_factor,
            greatest((p_rules #>> '{below_average,min_history}')::bigint, 1) AS below_average_min_history,
            p_rules ? 'amount_spike' AS amount_spike_on,
            (p_rules #>> '{amount_spike,multiplier}')::numeric AS amount_spike_multiplier,
            greatest((p_rules #>> '{amount_spike,min_history}')::bigint, 1) AS amount_spike_min_history,
            p_rules ? 'large_amount' AS large_amount_on,
            (p_rules #>> '{large_amount,threshold}')::numeric AS large_amount_threshold,
            p_rules ? 'velocity' AS velocity_on,
            (p_rules #>> '{velocity,window_seconds}')::numeric AS velocity_window_seconds,
            make_interval(secs => (p_rules #>> '{velocity,window_seconds}')::double precision)
                AS velocity_window,
            (p_rules #>> '{velocity,max_transactions}')::numeric AS velocity_max_transactions,
            p_rules ? 'rapid_succession' AS rapid_succession_on,
            (p_rules #>> '{rapid_succession,min_gap_seconds}')::numeric AS rapid_succession_min_gap_seconds
        -- p_rules above is this validated copy (a column wins over a parameter of
        -- the same name): PF001 for bad parameters, never a cast error.
        FROM (SELECT validate_rules(p_rules) AS p_rules) AS validated
    ),
    history AS (
        SELECT
            t.transaction_id,
            t.account_id,
            t.ts,
            t.amount,
            count(*) OVER prior AS prior_count,
            coalesce(sum(t.amount) OVER prior, 0) AS prior_sum,
            lag(t.ts) OVER (ORDER BY t.ts, t.transaction_id) AS previous_ts
        FROM transactions AS t
        WHERE t.account_id = p_account_id
        WINDOW prior AS (
            ORDER BY t.ts, t.transaction_id
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        )
    ),
    below_average AS (
        SELECT
            h.transaction_id, h.account_id, h.ts, h.amount,
            'below_average'::text AS rule_id,
            h.amount AS observed,
            round(p.below_average_factor * h.prior_sum / h.prior_count, 4) AS threshold,
            format('amount %s is below %s x the average %s of %s prior transactions',
                   h.amount, p.below_average_factor, round(h.prior_sum / h.prior_count, 4),
                   h.prior_count) AS reason
        FROM history AS h
        CROSS JOIN parameters AS p
        WHERE p.below_average_on
          AND h.prior_count >= p.below_average_min_history
          AND h.amount * h.prior_count < p.below_average_factor * h.prior_sum
    ),
    amount_spike AS (
        SELECT
            h.transaction_id, h.account_id, h.ts, h.amount,
            'amount_spike'::text,
            h.amount,
            round(p.amount_spike_multiplier * h.prior_sum / h.prior_count, 4),
            format('amount %s is above %s x the average %s of %s prior transactions',
                   h.amount, p.amount_spike_multiplier, round(h.prior_sum / h.prior_count, 4),
                   h.prior_count)
        FROM history AS h
        CROSS JOIN parameters AS p
        WHERE p.amount_spike_on
          AND h.prior_count >= p.amount_spike_min_history
          AND h.amount * h.prior_count > p.amount_spike_multiplier * h.prior_sum
    ),
    large_amount AS (
        SELECT
            h.transaction_id, h.account_id, h.ts, h.amount,
            'large_amount'::text,
            h.amount,
            p.large_amount_threshold,
            format('amount %s is at or above the limit %s', h.amount, p.large_amount_threshold)
        FROM history AS h
        CROSS JOIN parameters AS p
        WHERE p.large_amount_on
          AND h.amount >= p.large_amount_threshold
    ),
    velocity AS (
        SELECT
            h.transaction_id, h.account_id, h.ts, h.amount,
            'velocity'::text,
            (w.prior_in_window + 1)::numeric,
            p.velocity_max_transactions,
            format('%s transactions within %s seconds (this one included); the limit is %s',
                   w.prior_in_window + 1, p.velocity_window_seconds, p.velocity_max_transactions)
        FROM history AS h
        CROSS JOIN parameters AS p
        CROSS JOIN LATERAL (
            -- Prior transactions of the account in (ts - window, ts): an index-only range scan.
            SELECT count(*) AS prior_in_window
            FROM transactions AS w
            WHERE w.account_id = h.account_id
              AND w.ts > h.ts - p.velocity_window
              AND (w.ts, w.transaction_id) < (h.ts, h.transaction_id)
        ) AS w
        WHERE p.velocity_on
          AND w.prior_in_window + 1 > p.velocity_max_transactions
    ),
    rapid_succession AS (
        SELECT
            h.transaction_id, h.account_id, h.ts, h.amount,
            'rapid_succession'::text,
            round(extract(epoch FROM h.ts - h.previous_ts), 3),
            p.rapid_succession_min_gap_seconds,
            format('%s seconds since the previous transaction; the minimum is %s',
                   round(extract(epoch FROM h.ts - h.previous_ts), 3),
                   p.rapid_succession_min_gap_seconds)
        FROM history AS h
        CROSS JOIN parameters AS p
        WHERE p.rapid_succession_on
          AND h.previous_ts IS NOT NULL
          AND extract(epoch FROM h.ts - h.previous_ts) < p.rapid_succession_min_gap_seconds
    ),
    events AS (
        SELECT * FROM below_average
        UNION ALL SELECT * FROM amount_spike
        UNION ALL SELECT * FROM large_amount
        UNION ALL SELECT * FROM velocity
        UNION ALL SELECT * FROM rapid_succession
    )
    SELECT e.transaction_id, e.account_id, e.ts, e.amount, e.rule_id, e.observed, e.threshold, e.reason
    FROM events AS e
    ORDER BY e.ts, e.transaction_id, e.rule_id;
$$;

COMMENT ON FUNCTION evaluate_account(bigint, jsonb) IS
    'Fired rules (fraud_event rows) on every transaction of one account, for the rules and parameters given as {rule_id: parameters}; only prior transactions are seen.';

REVOKE ALL ON FUNCTION evaluate_account(bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION evaluate_account(bigint, jsonb) TO pgfraud_app, pgfraud_readonly;
