-- _evaluate_from(p_rules jsonb, p_account_ids bigint[], p_from_ts timestamptz[],
--                p_from_transaction_ids bigint[], p_base_counts bigint[],
--                p_base_sums numeric[]) -> SETOF fraud_event
--
-- The rule code, written once. For each account i of p_account_ids, every
-- rule of p_rules that fires on each of its transactions at or after the
-- position (p_from_ts[i], p_from_transaction_ids[i]) in (ts, transaction_id)
-- order. p_base_counts[i] and p_base_sums[i] are the count and the sum of
-- amounts of the account's transactions strictly before that position, so
-- the prior average of a row needs no pass over the account's past:
--   from scratch (evaluate_account): position -infinity, base 0 and 0;
--   on arrival (score_changed_transactions): the position of the earliest
--   changed row, base = the account's running totals (account_states) minus
--   the rows from that position on; a late arrival re-scores the rows after it.
-- Each account may appear once. p_rules maps rule_id -> parameters object for
-- the rules to run (a rule absent from it does not run).
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
-- Cost per account: one index range scan of the rows from its position on
-- and of those inside the velocity window before it, one index probe for the
-- row before it, and window functions over those rows (velocity counts by a
-- RANGE frame over elapsed time, not a probe per row).
-- Rows come in no particular order. Raises nothing itself; a missing
-- parameter of a listed rule makes that rule's comparison NULL, so it does
-- not fire (set_rule refuses such parameters).
CREATE OR REPLACE FUNCTION _evaluate_from(
    p_rules jsonb,
    p_account_ids bigint[],
    p_from_ts timestamptz[],
    p_from_transaction_ids bigint[],
    p_base_counts bigint[],
    p_base_sums numeric[]
)
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
            (p_rules #>> '{velocity,max_transactions}')::numeric AS velocity_max_transactions,
            p_rules ? 'rapid_succession' AS rapid_succession_on,
            (p_rules #>> '{rapid_succession,min_gap_seconds}')::numeric AS rapid_succession_min_gap_seconds
    ),
    starts AS (
        -- Each account's position, base totals, and the time of its last
        -- transaction before the position (one index probe).
        SELECT s.account_id, s.from_ts, s.from_transaction_id, s.base_count, s.base_sum,
               b.ts AS before_ts
        FROM unnest(p_account_ids, p_from_ts, p_from_transaction_ids, p_base_counts, p_base_sums)
            AS s(account_id, from_ts, from_transaction_id, base_count, base_sum)
        LEFT JOIN LATERAL (
            SELECT t.ts
            FROM transactions AS t
            WHERE t.account_id = s.account_id
              AND (t.ts, t.transaction_id) < (s.from_ts, s.from_transaction_id)
            ORDER BY t.ts DESC, t.transaction_id DESC
            LIMIT 1
        ) AS b ON true
    ),
    span AS (
        -- The rows to score (from each position on) and, before them, the
        -- rows inside the velocity window of the first one, which count in
        -- windows but are not scored.
        SELECT
            t.transaction_id,
            t.account_id,
            t.ts,
            t.amount,
            (t.ts, t.transaction_id) >= (s.from_ts, s.from_transaction_id) AS scored,
            s.base_count,
            s.base_sum,
            s.before_ts
        FROM starts AS s
        JOIN transactions AS t
          ON t.account_id = s.account_id
         AND t.ts >= s.from_ts - make_interval(
                 secs => coalesce((p_rules #>> '{velocity,window_seconds}')::double precision, 0))
    ),
    windowed AS (
        SELECT
            w.*,
            w.base_count + count(*) FILTER (WHERE w.scored) OVER prior AS prior_count,
            w.base_sum + coalesce(sum(w.amount) FILTER (WHERE w.scored) OVER prior, 0) AS prior_sum,
            coalesce(lag(w.ts) OVER account_order, w.before_ts) AS previous_ts,
            -- Prior rows in (ts - window, ts): the rows before this one in the
            -- span, less those at or before ts - window (all of them prior).
            -- With a zero window that difference is negative: none.
            greatest(
                count(*) OVER prior
                - count(*) OVER (
                    PARTITION BY w.account_id
                    ORDER BY w.ts
                    RANGE BETWEEN UNBOUNDED PRECEDING AND make_interval(
                        secs => coalesce((p_rules #>> '{velocity,window_seconds}')::double precision, 0))
                        PRECEDING
                ),
                0
            ) AS prior_in_window
        FROM span AS w
        WINDOW account_order AS (PARTITION BY w.account_id ORDER BY w.ts, w.transaction_id),
               prior AS (account_order ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
    ),
    history AS (
        SELECT h.transaction_id, h.account_id, h.ts, h.amount, h.prior_count, h.prior_sum,
               h.previous_ts, h.prior_in_window
        FROM windowed AS h
        WHERE h.scored
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
            (h.prior_in_window + 1)::numeric,
            p.velocity_max_transactions,
            format('%s transactions within %s seconds (this one included); the limit is %s',
                   h.prior_in_window + 1, p.velocity_window_seconds, p.velocity_max_transactions)
        FROM history AS h
        CROSS JOIN parameters AS p
        WHERE p.velocity_on
          AND h.prior_in_window + 1 > p.velocity_max_transactions
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
    FROM events AS e;
$$;

COMMENT ON FUNCTION _evaluate_from(jsonb, bigint[], timestamptz[], bigint[], bigint[], numeric[]) IS
    'The rule code: fired rules on each given account''s transactions from a position on, given the count and sum of amounts before it.';

REVOKE ALL ON FUNCTION _evaluate_from(jsonb, bigint[], timestamptz[], bigint[], bigint[], numeric[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _evaluate_from(jsonb, bigint[], timestamptz[], bigint[], bigint[], numeric[])
    TO pgfraud_app, pgfraud_readonly;
