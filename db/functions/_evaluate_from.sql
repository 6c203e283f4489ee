-- _evaluate_from(p_rules jsonb, p_account_ids bigint[], p_from_ts timestamptz[],
--                p_from_transaction_ids bigint[], p_base_counts bigint[],
--                p_base_sums numeric[], p_until_ts timestamptz[] DEFAULT NULL,
--                p_until_transaction_ids bigint[] DEFAULT NULL) -> SETOF fraud_event
--
-- The rule code, written once. For each account i of p_account_ids, every
-- rule of p_rules that fires on each of its transactions at or after the
-- position (p_from_ts[i], p_from_transaction_ids[i]) in (ts, transaction_id)
-- order, and at or before (p_until_ts[i], p_until_transaction_ids[i]) when
-- that is given (NULL, or arrays shorter than p_account_ids: to the end). A
-- row reads only rows before it, so the bound changes no row's result: it
-- only spares the rows after it (a merchant neighbour re-scored by
-- _rescore_accounts, whose later rows cannot read the change). p_base_counts[i] and p_base_sums[i] are the count and the sum of
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
-- account's transactions strictly before it, ordered by (ts, transaction_id),
-- and (merchant rules) against the merchant's transactions of other accounts
-- strictly before it in time. Windows are elapsed time. Comparisons are exact
-- numeric arithmetic (amount x n < factor x sum, never a rounded average); the
-- threshold shown is rounded to 4 decimal places.
--
-- Rules (parameters):
--   below_average (factor, min_history, window_days): amount < factor x
--       prior average; window_days > 0 averages only the prior transactions
--       in (ts - window_days, ts), 0 or absent the whole past.
--   amount_spike (multiplier, min_history, window_days): amount >
--       multiplier x prior average (window_days as for below_average).
--   large_amount (threshold): amount >= threshold (currency units).
--   velocity (window_seconds, max_transactions): transactions in
--       (ts - window, ts], this one included, > max_transactions.
--   rapid_succession (min_gap_seconds): 0 < ts - previous ts <
--       min_gap_seconds, where the previous ts is the latest EARLIER time of
--       the account (equal times are same_timestamp's business).
--   same_timestamp (max_transactions): the account's transactions at exactly
--       this ts up to this one (by transaction_id), this one included, >
--       max_transactions.
--   new_merchant_large (multiplier, min_history, unused_days): merchant_id
--       known, the account has no prior transaction at that merchant (with
--       unused_days > 0: none with time in (ts - unused_days, ts]; 0 or absent:
--       none ever), and amount > multiplier x the account's prior average
--       (whole past, at least min_history prior transactions).
--   new_merchant_run (multiplier, max_run, unused_days, min_history): a run
--       of payments at merchants new to the account: this one and the ones
--       just before it (in (ts, transaction_id) order, at most max_run in
--       all), each at a known merchant where the account had no prior
--       transaction with time in (its ts - unused_days, its ts] (0: none
--       ever), the run stopping at the first that is not. Fires when, for
--       some length L >= 2 of that run, the last L amounts sum to more than
--       multiplier x L x this row's prior average (whole past, at least
--       min_history prior transactions); the longest such L is shown.
--   compromised_merchant (window_days, delay_days, min_known_fraud,
--       min_fraud_share): merchant_id known and, among the merchant's
--       transactions (all accounts) with time in
--       [ts - window_days, ts - delay_days), at least min_known_fraud are
--       known fraud as known at ts - delay_days and known >= min_fraud_share
--       x all of them. Known fraud as known at a time T (what was known
--       strictly before T, ms resolution): the latest review recorded
--       before T (reviewed_at, then review_id) is confirmed_fraud, or none
--       was and its label's known_at is before T (the labels of
--       evaluate_rules, as known then). delay_days is the reporting delay,
--       on top of known_at: a label or review counts from delay_days after
--       it became known, so what was recorded after a transaction's time
--       never changes its verdict.
--   users' rules (add_rule): a boolean expression over the row's features
--       (rule_features: amount, prior_count, prior_average (4 places),
--       seconds_since_previous (3 places), count_1h, sum_1h, count_24h,
--       sum_24h, merchant_id, first_at_merchant, and the merchant's
--       merchant_transactions_7d / _30d: its transactions (all accounts)
--       with time in [ts - 7 days, ts) / [ts - 30 days, ts) (elapsed 168 /
--       720 hours), merchant_fraud_7d / _30d: the known fraud among them as
--       known at ts (strictly before it), merchant_fraud_share_7d / _30d:
--       fraud / transactions (4 places; NULL when no transaction);
--       merchant_surge_7d: merchant_transactions_7d x S / max(B x 7 days, S)
--       (4 places), B the merchant's transactions with time in
--       [ts - 37 days, ts - 7 days) (888 / 168 hours) and S the time from
--       the first of them to ts - 7 days (ms exact): the last week against
--       the week expected at its own earlier rate, at least 1 expected;
--       NULL when B = 0 or S < 7 days; all seven
--       NULL for a row without a merchant, and computed only when a rule
--       run reads one of them), compiled into _custom_rule_events; observed
--       and threshold NULL, the reason shows the values of the features used.
-- What a row's result depends on, for the re-scoring that keeps alerts exact:
-- its own account's earlier rows (re-scored from a changed position on by
-- _rescore_accounts), and for compromised_merchant and the merchant
-- features the merchant's other rows and their labels and reviews
-- (re-scored from the time a change became known, plus the delay, by
-- _rescore_merchant_rows: see score_changed_transactions and
-- rescore_on_label_change).
-- Cost per account: one index range scan of the rows from its position on
-- and of those inside the largest window before it, one index probe for the
-- earlier time before it, window functions over those rows; per scored row
-- with a merchant, one backward index probe (its latest earlier payment
-- there) for new_merchant_large and one for new_merchant_run, and for a row
-- that new_merchant_run finds new, one index range of the account's last
-- max_run payments and a probe each; per merchant, one index
-- range scan of its rows inside the compromised_merchant window (and the
-- users' merchant features' 888 hours), and for those features one index
-- probe per scored row (the first row of merchant_surge_7d's base).
-- Each rule's part is conditioned on p_rules ? '<rule>', an expression of the
-- argument alone, which PostgreSQL evaluates once (a one-time filter): a rule
-- that is off costs nothing, not even a pass over the scored rows.
-- Rows come in no particular order. Raises nothing itself; a missing
-- parameter of a listed rule makes that rule's comparison NULL, so it does
-- not fire (set_rule refuses such parameters).
CREATE OR REPLACE FUNCTION _evaluate_from(
    p_rules jsonb,
    p_account_ids bigint[],
    p_from_ts timestamptz[],
    p_from_transaction_ids bigint[],
    p_base_counts bigint[],
    p_base_sums numeric[],
    p_until_ts timestamptz[] DEFAULT NULL,
    p_until_transaction_ids bigint[] DEFAULT NULL
)
RETURNS SETOF fraud_event
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$
    WITH parameters AS MATERIALIZED (
        -- Read once per call (not once per row), typed in one place.
        SELECT
            (p_rules #>> '{below_average,factor}')::numeric AS below_average_factor,
            greatest((p_rules #>> '{below_average,min_history}')::bigint, 1) AS below_average_min_history,
            coalesce((p_rules #>> '{below_average,window_days}')::numeric, 0) AS below_average_window_days,
            (p_rules #>> '{amount_spike,multiplier}')::numeric AS amount_spike_multiplier,
            greatest((p_rules #>> '{amount_spike,min_history}')::bigint, 1) AS amount_spike_min_history,
            coalesce((p_rules #>> '{amount_spike,window_days}')::numeric, 0) AS amount_spike_window_days,
            (p_rules #>> '{large_amount,threshold}')::numeric AS large_amount_threshold,
            (p_rules #>> '{velocity,window_seconds}')::numeric AS velocity_window_seconds,
            (p_rules #>> '{velocity,max_transactions}')::numeric AS velocity_max_transactions,
            (p_rules #>> '{rapid_succession,min_gap_seconds}')::numeric AS rapid_succession_min_gap_seconds,
            (p_rules #>> '{same_timestamp,max_transactions}')::numeric AS same_timestamp_max_transactions,
            (p_rules #>> '{new_merchant_large,multiplier}')::numeric AS new_merchant_large_multiplier,
            greatest((p_rules #>> '{new_merchant_large,min_history}')::bigint, 1) AS new_merchant_large_min_history,
            coalesce((p_rules #>> '{new_merchant_large,unused_days}')::numeric, 0) AS new_merchant_large_unused_days,
            (p_rules #>> '{new_merchant_run,multiplier}')::numeric AS new_merchant_run_multiplier,
            (p_rules #>> '{new_merchant_run,max_run}')::bigint AS new_merchant_run_max_run,
            (p_rules #>> '{new_merchant_run,unused_days}')::numeric AS new_merchant_run_unused_days,
            greatest((p_rules #>> '{new_merchant_run,min_history}')::bigint, 1) AS new_merchant_run_min_history,
            (p_rules #>> '{compromised_merchant,window_days}')::numeric AS compromised_merchant_window_days,
            (p_rules #>> '{compromised_merchant,delay_days}')::numeric AS compromised_merchant_delay_days,
            greatest((p_rules #>> '{compromised_merchant,min_known_fraud}')::numeric, 1) AS compromised_merchant_min_known_fraud,
            (p_rules #>> '{compromised_merchant,min_fraud_share}')::numeric AS compromised_merchant_min_fraud_share,
            -- compromised_merchant's window and its delay plus 1 ms: the
            -- merchant's rows and what was known count up to ts minus this.
            make_interval(secs => (p_rules #>> '{compromised_merchant,window_days}')::double precision
                                  * 86400) AS compromised_merchant_window,
            make_interval(secs => (p_rules #>> '{compromised_merchant,delay_days}')::double precision
                                  * 86400 + 0.001) AS compromised_merchant_before,
            -- A user's rule (add_rule) among p_rules: its features are computed.
            EXISTS (SELECT FROM rules AS r
                    WHERE r.expression IS NOT NULL AND p_rules ? r.rule_id) AS custom_on,
            -- ... and one that reads the merchant features (merchant_fraud_7d ...).
            EXISTS (SELECT FROM rules AS r
                    WHERE r.expression IS NOT NULL AND p_rules ? r.rule_id
                      AND _reads_merchant_features(r.expression)) AS custom_merchant_on,
            -- How far before a scored row the merchant's rows are read.
            greatest(
                CASE WHEN p_rules ? 'compromised_merchant'
                     THEN make_interval(secs => coalesce(
                         (p_rules #>> '{compromised_merchant,window_days}')::double precision, 0) * 86400)
                     ELSE interval '0' END,
                CASE WHEN EXISTS (SELECT FROM rules AS r
                                  WHERE r.expression IS NOT NULL AND p_rules ? r.rule_id
                                    AND _reads_merchant_features(r.expression))
                     THEN interval '888 hours' ELSE interval '0' END
            ) AS merchant_reach,
            -- How far before a position the scored rows' windows reach.
            make_interval(secs => greatest(
                CASE WHEN EXISTS (SELECT FROM rules AS r
                                  WHERE r.expression IS NOT NULL AND p_rules ? r.rule_id)
                     THEN 86400 ELSE 0 END,
                coalesce((p_rules #>> '{velocity,window_seconds}')::double precision, 0),
                coalesce((p_rules #>> '{below_average,window_days}')::double precision, 0) * 86400,
                coalesce((p_rules #>> '{amount_spike,window_days}')::double precision, 0) * 86400
            )) AS reach
    ),
    starts AS (
        -- Each account's position, base totals, and the latest time of the
        -- account strictly before the position's time (one index probe).
        SELECT s.account_id, s.from_ts, s.from_transaction_id, s.base_count, s.base_sum,
               b.ts AS before_ts, coalesce(s.until_ts, 'infinity') AS until_ts,
               coalesce(s.until_transaction_id, 9223372036854775807) AS until_transaction_id
        FROM unnest(p_account_ids, p_from_ts, p_from_transaction_ids, p_base_counts, p_base_sums,
                    p_until_ts, p_until_transaction_ids)
            AS s(account_id, from_ts, from_transaction_id, base_count, base_sum, until_ts,
                 until_transaction_id)
        LEFT JOIN LATERAL (
            SELECT t.ts
            FROM transactions AS t
            WHERE t.account_id = s.account_id
              AND t.ts < s.from_ts
            ORDER BY t.ts DESC, t.transaction_id DESC
            LIMIT 1
        ) AS b ON true
    ),
    span AS (
        -- The rows to score (from each position on, up to its bound) and, before them, the
        -- rows inside the widest window of the first one (every row at the
        -- position's time included), which count in windows but are not scored.
        SELECT
            t.transaction_id,
            t.account_id,
            t.ts,
            t.amount,
            t.merchant_id,
            (t.ts, t.transaction_id) >= (s.from_ts, s.from_transaction_id) AS scored,
            s.base_count,
            s.base_sum,
            s.before_ts
        FROM starts AS s
        CROSS JOIN parameters AS p
        JOIN transactions AS t
          ON t.account_id = s.account_id
         AND t.ts >= s.from_ts - p.reach
         AND t.ts <= s.until_ts
         AND (t.ts, t.transaction_id) <= (s.until_ts, s.until_transaction_id)
    ),
    windowed AS NOT MATERIALIZED (
        -- The windows every rule set needs, in three window passes (one in
        -- (ts, transaction_id) order, two in time): the prior count and sum,
        -- the latest earlier time, the rows at this time so far, and the
        -- velocity window.
        SELECT
            w.*,
            w.base_count + count(*) FILTER (WHERE w.scored) OVER prior AS prior_count,
            w.base_sum + coalesce(sum(w.amount) FILTER (WHERE w.scored) OVER prior, 0) AS prior_sum,
            count(*) OVER prior AS span_prior_count,
            -- The latest earlier time: every row at an earlier time within
            -- the span, else the probe.
            greatest(max(w.ts) OVER earlier, w.before_ts) AS previous_ts,
            -- The rows before this one less those at an earlier time (ts has
            -- millisecond resolution): the prior rows at this time, plus this one.
            count(*) OVER prior - count(*) OVER earlier + 1 AS same_time_count,
            -- Prior rows in (ts - window, ts): the rows before this one in the
            -- span, less those at or before ts - window (all of them prior).
            -- With a zero window that difference is negative: none.
            greatest(count(*) OVER prior - count(*) OVER velocity_out, 0) AS prior_in_window
        FROM span AS w
        WINDOW account_order AS (PARTITION BY w.account_id ORDER BY w.ts, w.transaction_id),
               prior AS (account_order ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
               by_time AS (PARTITION BY w.account_id ORDER BY w.ts),
               earlier AS (by_time RANGE BETWEEN UNBOUNDED PRECEDING AND INTERVAL '1 millisecond' PRECEDING),
               velocity_out AS (by_time RANGE BETWEEN UNBOUNDED PRECEDING AND make_interval(
                   secs => coalesce((p_rules #>> '{velocity,window_seconds}')::double precision, 0))
                   PRECEDING)
    ),
    history AS (
        -- The scored rows with their features. Each window pass costs about
        -- as much as the rest of the rule code, so the windows only some
        -- rule sets need (averages over window_days, users' rules' 1 h and
        -- 24 h sums) are computed in a second branch that runs only for
        -- those rule sets: its condition depends on p_rules alone, so
        -- PostgreSQL evaluates it once and skips the branch that is off.
        SELECT h.transaction_id, h.account_id, h.ts, h.amount, h.merchant_id,
               h.prior_count, h.prior_sum, h.previous_ts, h.same_time_count, h.prior_in_window,
               h.base_count,
               NULL::bigint AS count_1h, NULL::numeric AS sum_1h,
               NULL::bigint AS count_24h, NULL::numeric AS sum_24h,
               h.prior_count AS spike_count, h.prior_sum AS spike_sum,
               h.prior_count AS below_count, h.prior_sum AS below_sum
        FROM windowed AS h
        WHERE h.scored
          AND NOT (coalesce((p_rules #>> '{amount_spike,window_days}')::numeric, 0) > 0
                   OR coalesce((p_rules #>> '{below_average,window_days}')::numeric, 0) > 0
                   OR EXISTS (SELECT FROM rules AS r
                              WHERE r.expression IS NOT NULL AND p_rules ? r.rule_id))
        UNION ALL
        SELECT e.transaction_id, e.account_id, e.ts, e.amount, e.merchant_id,
               e.prior_count, e.prior_sum, e.previous_ts, e.same_time_count, e.prior_in_window,
               e.base_count,
               e.count_1h, e.sum_1h, e.count_24h, e.sum_24h,
               CASE WHEN coalesce((p_rules #>> '{amount_spike,window_days}')::numeric, 0) > 0
                    THEN e.spike_window_count ELSE e.prior_count END,
               CASE WHEN coalesce((p_rules #>> '{amount_spike,window_days}')::numeric, 0) > 0
                    THEN e.spike_window_sum ELSE e.prior_sum END,
               CASE WHEN coalesce((p_rules #>> '{below_average,window_days}')::numeric, 0) > 0
                    THEN e.below_window_count ELSE e.prior_count END,
               CASE WHEN coalesce((p_rules #>> '{below_average,window_days}')::numeric, 0) > 0
                    THEN e.below_window_sum ELSE e.prior_sum END
        FROM (
            SELECT
                w.*,
                w.span_prior_count - count(*) OVER spike_out AS spike_window_count,
                coalesce(sum(w.amount) OVER prior, 0) - coalesce(sum(w.amount) OVER spike_out, 0) AS spike_window_sum,
                w.span_prior_count - count(*) OVER below_out AS below_window_count,
                coalesce(sum(w.amount) OVER prior, 0) - coalesce(sum(w.amount) OVER below_out, 0) AS below_window_sum,
                -- Users' rules: this one and the prior rows in (ts - 1 h, ts] and (ts - 24 h, ts].
                w.span_prior_count - count(*) OVER hour_out + 1 AS count_1h,
                coalesce(sum(w.amount) OVER prior, 0) - coalesce(sum(w.amount) OVER hour_out, 0) + w.amount AS sum_1h,
                w.span_prior_count - count(*) OVER day_out + 1 AS count_24h,
                coalesce(sum(w.amount) OVER prior, 0) - coalesce(sum(w.amount) OVER day_out, 0) + w.amount AS sum_24h
            FROM windowed AS w
            WHERE coalesce((p_rules #>> '{amount_spike,window_days}')::numeric, 0) > 0
               OR coalesce((p_rules #>> '{below_average,window_days}')::numeric, 0) > 0
               OR EXISTS (SELECT FROM rules AS r
                          WHERE r.expression IS NOT NULL AND p_rules ? r.rule_id)
            WINDOW prior AS (PARTITION BY w.account_id ORDER BY w.ts, w.transaction_id
                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                   by_time AS (PARTITION BY w.account_id ORDER BY w.ts),
                   spike_out AS (by_time RANGE BETWEEN UNBOUNDED PRECEDING AND make_interval(
                       secs => coalesce((p_rules #>> '{amount_spike,window_days}')::double precision, 0) * 86400)
                       PRECEDING),
                   below_out AS (by_time RANGE BETWEEN UNBOUNDED PRECEDING AND make_interval(
                       secs => coalesce((p_rules #>> '{below_average,window_days}')::double precision, 0) * 86400)
                       PRECEDING),
                   hour_out AS (by_time RANGE BETWEEN UNBOUNDED PRECEDING AND INTERVAL '1 hour' PRECEDING),
                   day_out AS (by_time RANGE BETWEEN UNBOUNDED PRECEDING AND INTERVAL '24 hours' PRECEDING)
        ) AS e
        WHERE e.scored
    ),
    below_average AS (
        SELECT
            h.transaction_id, h.account_id, h.ts, h.amount,
            'below_average'::text AS rule_id,
            h.amount AS observed,
            round(p.below_average_factor * h.below_sum / h.below_count, 4) AS threshold,
            format('amount %s is below %s x the average %s of %s prior transactions%s',
                   h.amount, p.below_average_factor, round(h.below_sum / h.below_count, 4),
                   h.below_count,
                   CASE WHEN p.below_average_window_days > 0
                        THEN format(' in %s days', p.below_average_window_days) ELSE '' END) AS reason
        FROM history AS h
        CROSS JOIN parameters AS p
        WHERE p_rules ? 'below_average'
          AND h.below_count >= p.below_average_min_history
          AND h.amount * h.below_count < p.below_average_factor * h.below_sum
    ),
    amount_spike AS (
        SELECT
            h.transaction_id, h.account_id, h.ts, h.amount,
            'amount_spike'::text,
            h.amount,
            round(p.amount_spike_multiplier * h.spike_sum / h.spike_count, 4),
            format('amount %s is above %s x the average %s of %s prior transactions%s',
                   h.amount, p.amount_spike_multiplier, round(h.spike_sum / h.spike_count, 4),
                   h.spike_count,
                   CASE WHEN p.amount_spike_window_days > 0
                        THEN format(' in %s days', p.amount_spike_window_days) ELSE '' END)
        FROM history AS h
        CROSS JOIN parameters AS p
        WHERE p_rules ? 'amount_spike'
          AND h.spike_count >= p.amount_spike_min_history
          AND h.amount * h.spike_count > p.amount_spike_multiplier * h.spike_sum
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
        WHERE p_rules ? 'large_amount'
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
        WHERE p_rules ? 'velocity'
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
        WHERE p_rules ? 'rapid_succession'
          AND h.previous_ts IS NOT NULL
          AND extract(epoch FROM h.ts - h.previous_ts) < p.rapid_succession_min_gap_seconds
    ),
    same_timestamp AS (
        SELECT
            h.transaction_id, h.account_id, h.ts, h.amount,
            'same_timestamp'::text,
            h.same_time_count::numeric,
            p.same_timestamp_max_transactions,
            -- The time as on the wire (UTC, ms), never in the session's zone,
            -- so the reason is the same whoever's session scores the row.
            format('%s transactions at exactly %s (this one included); the limit is %s',
                   h.same_time_count,
                   to_char(h.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                   p.same_timestamp_max_transactions)
        FROM history AS h
        CROSS JOIN parameters AS p
        WHERE p_rules ? 'same_timestamp'
          AND h.same_time_count > p.same_timestamp_max_transactions
    ),
    merchant_visits AS (
        -- For the merchant rules: each scored row at a known merchant with the
        -- time of the account's latest earlier payment there (NULL: none),
        -- from the scored rows themselves (one window pass), else, when the
        -- account has rows before the position (base_count > 0, an arrival),
        -- one backward index probe. Scoring from scratch needs no probe.
        SELECT v.*,
               CASE WHEN v.merchant_id IS NULL THEN NULL
                    WHEN v.previous_in_span IS NOT NULL THEN v.previous_in_span
                    WHEN v.base_count = 0 THEN NULL
                    ELSE (SELECT max(t.ts)
                          FROM transactions AS t
                          WHERE t.account_id = v.account_id
                            AND t.merchant_id = v.merchant_id
                            AND (t.ts, t.transaction_id) < (v.ts, v.transaction_id))
               END AS previous_at_merchant
        FROM (
            SELECT h.transaction_id, h.account_id, h.ts, h.amount, h.merchant_id,
                   h.prior_count, h.prior_sum, h.base_count,
                   max(h.ts) OVER (PARTITION BY h.account_id, h.merchant_id
                                   ORDER BY h.ts, h.transaction_id
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous_in_span
            FROM history AS h
            WHERE h.merchant_id IS NOT NULL
              AND (p_rules ? 'new_merchant_large' OR p_rules ? 'new_merchant_run')
        ) AS v
    ),
    new_merchant_large AS (
        SELECT
            h.transaction_id, h.account_id, h.ts, h.amount,
            'new_merchant_large'::text,
            h.amount,
            round(p.new_merchant_large_multiplier * h.prior_sum / h.prior_count, 4),
            format('%s; amount %s is above %s x the average %s of %s prior transactions',
                   CASE WHEN p.new_merchant_large_unused_days > 0
                        THEN format('no payment at merchant %s in the last %s days',
                                    h.merchant_id, p.new_merchant_large_unused_days)
                        ELSE format('first payment at merchant %s', h.merchant_id) END,
                   h.amount, p.new_merchant_large_multiplier,
                   round(h.prior_sum / h.prior_count, 4), h.prior_count)
        FROM merchant_visits AS h
        CROSS JOIN parameters AS p
        WHERE p_rules ? 'new_merchant_large'
          AND h.merchant_id IS NOT NULL
          AND h.prior_count >= p.new_merchant_large_min_history
          AND h.amount * h.prior_count > p.new_merchant_large_multiplier * h.prior_sum
          -- The account's latest earlier payment there is none, or at or
          -- before ts - unused_days.
          AND coalesce(h.previous_at_merchant <= CASE WHEN p.new_merchant_large_unused_days > 0
                    THEN h.ts - make_interval(
                        secs => p.new_merchant_large_unused_days::double precision * 86400)
                    ELSE '-infinity'::timestamptz END, true)
    ),
    new_merchant_run AS (
        -- Candidates: rows at a merchant new to the account whose previous
        -- row at a merchant (account order) is new too, or is not scored here
        -- (an arrival's first): a run of 2 or more needs both (a row with no
        -- merchant between them ends the run, which the run's own read below
        -- sees). For each,
        -- the account's last max_run payments up to it, newest first (one
        -- index range), each probed for a new merchant.
        SELECT
            h.transaction_id, h.account_id, h.ts, h.amount,
            'new_merchant_run'::text,
            round(r.run_sum / r.run_length, 4),
            round(p.new_merchant_run_multiplier * h.prior_sum / h.prior_count, 4),
            format('%s payments in a row (this one included) at merchants %s, together %s:'
                   ' an average %s above %s x the average %s of %s prior transactions',
                   r.run_length,
                   CASE WHEN p.new_merchant_run_unused_days > 0
                        THEN format('not used in the last %s days', p.new_merchant_run_unused_days)
                        ELSE 'new to the account' END,
                   r.run_sum, round(r.run_sum / r.run_length, 4), p.new_merchant_run_multiplier,
                   round(h.prior_sum / h.prior_count, 4), h.prior_count)
        FROM (
            SELECT c.*,
                   lag(c.is_new) OVER (PARTITION BY c.account_id
                                       ORDER BY c.ts, c.transaction_id) AS previous_is_new
            FROM (
                SELECT mv.*,
                       mv.merchant_id IS NOT NULL AND coalesce(mv.previous_at_merchant <= CASE
                           WHEN p.new_merchant_run_unused_days > 0
                           THEN mv.ts - make_interval(
                               secs => p.new_merchant_run_unused_days::double precision * 86400)
                           ELSE '-infinity'::timestamptz END, true) AS is_new
                FROM merchant_visits AS mv
                CROSS JOIN parameters AS p
                WHERE p_rules ? 'new_merchant_run'
            ) AS c
        ) AS h
        CROSS JOIN parameters AS p
        CROSS JOIN LATERAL (
            SELECT q.n AS run_length, q.run_sum
            FROM (
                SELECT row_number() OVER newest AS n,
                       sum(l.amount) OVER newest AS run_sum,
                       bool_and(l.merchant_id IS NOT NULL AND coalesce((
                           SELECT max(u.ts)
                           FROM transactions AS u
                           WHERE u.account_id = l.account_id
                             AND u.merchant_id = l.merchant_id
                             AND (u.ts, u.transaction_id) < (l.ts, l.transaction_id)
                       ) <= CASE WHEN p.new_merchant_run_unused_days > 0
                                 THEN l.ts - make_interval(secs =>
                                     p.new_merchant_run_unused_days::double precision * 86400)
                                 ELSE '-infinity'::timestamptz END, true)) OVER newest AS all_new
                FROM (
                    SELECT t.account_id, t.transaction_id, t.ts, t.amount, t.merchant_id
                    FROM transactions AS t
                    WHERE t.account_id = h.account_id
                      AND (t.ts, t.transaction_id) <= (h.ts, h.transaction_id)
                    ORDER BY t.ts DESC, t.transaction_id DESC
                    LIMIT p.new_merchant_run_max_run
                ) AS l
                WINDOW newest AS (ORDER BY l.ts DESC, l.transaction_id DESC)
            ) AS q
            WHERE q.n >= 2
              AND q.all_new
              AND q.run_sum * h.prior_count > p.new_merchant_run_multiplier * q.n * h.prior_sum
            ORDER BY q.n DESC
            LIMIT 1
        ) AS r
        WHERE h.is_new
          AND coalesce(h.previous_is_new, true)
          AND h.prior_count >= p.new_merchant_run_min_history
    ),
    merchant_bounds AS (
        -- The merchants of the scored rows and the time range their windows
        -- cover (compromised_merchant's, and the users' merchant features' 30 days).
        SELECT h.merchant_id, min(h.ts) AS first_ts, max(h.ts) AS last_ts
        FROM history AS h
        CROSS JOIN parameters AS p
        WHERE (p_rules ? 'compromised_merchant' OR p.custom_merchant_on)
          AND h.merchant_id IS NOT NULL
        GROUP BY h.merchant_id
    ),
    reviewed AS (
        -- The reviewed transactions (read only when a merchant window is).
        SELECT DISTINCT rv.transaction_id
        FROM reviews AS rv
        WHERE EXISTS (SELECT FROM merchant_bounds)
    ),
    merchant_span AS MATERIALIZED (
        -- The merchants' transactions inside the windows, with the time their
        -- label became known (NULL: none) and whether any review exists.
        SELECT t.merchant_id, t.ts, t.transaction_id, l.known_at AS label_known_at,
               rv.transaction_id IS NOT NULL AS is_reviewed
        FROM merchant_bounds AS b
        CROSS JOIN parameters AS p
        JOIN transactions AS t
          ON t.merchant_id = b.merchant_id
         AND t.ts >= b.first_ts - p.merchant_reach
         AND t.ts < b.last_ts
        LEFT JOIN fraud_labels AS l ON l.transaction_id = t.transaction_id
        LEFT JOIN reviewed AS rv ON rv.transaction_id = t.transaction_id
    ),
    fraud_periods AS (
        -- Known fraud as known at a time: for each labelled or reviewed
        -- transaction of the span, the periods [known_from, known_until) of
        -- known time (until NULL: open) in which it was known fraud. Its
        -- status changes only when its label (known_at) or one of its
        -- reviews (reviewed_at) becomes known; at such a time it is known
        -- fraud if the latest review known then (by reviewed_at, then
        -- review_id) is confirmed_fraud, or, with no review known then, if
        -- its label is known then (a false_positive review overrules it).
        SELECT c.merchant_id, c.ts, k.known_from, k.known_until
        FROM merchant_span AS c
        CROSS JOIN LATERAL (
            SELECT s.known_from,
                   lead(s.known_from) OVER (ORDER BY s.known_from) AS known_until,
                   coalesce((SELECT rv.status = 'confirmed_fraud'
                             FROM reviews AS rv
                             WHERE rv.transaction_id = c.transaction_id
                               AND rv.reviewed_at <= s.known_from
                             ORDER BY rv.reviewed_at DESC, rv.review_id DESC
                             LIMIT 1),
                            c.label_known_at <= s.known_from,
                            false) AS known_fraud
            FROM (SELECT c.label_known_at AS known_from WHERE c.label_known_at IS NOT NULL
                  UNION
                  SELECT rv.reviewed_at FROM reviews AS rv
                  WHERE c.is_reviewed AND rv.transaction_id = c.transaction_id) AS s
        ) AS k
        WHERE (c.label_known_at IS NOT NULL OR c.is_reviewed)
          AND k.known_fraud
    ),
    merchant_rows AS (
        -- The merchant's transactions inside the windows, and the scored
        -- rows as probes, in one time line per merchant.
        SELECT m.merchant_id, m.ts, NULL::bigint AS transaction_id
        FROM merchant_span AS m
        UNION ALL
        SELECT h.merchant_id, h.ts, h.transaction_id
        FROM history AS h
        CROSS JOIN parameters AS p
        WHERE (p_rules ? 'compromised_merchant' OR p.custom_merchant_on)
          AND h.merchant_id IS NOT NULL
    ),
    merchant_counts AS (
        -- Per probe: the merchant's transactions in [ts - window, ts - delay)
        -- (ms resolution: at or before ts - delay - 1 ms), and for the users'
        -- features in [ts - 7 days, ts), [ts - 30 days, ts) and
        -- [ts - 37 days, ts - 7 days) (merchant_surge_7d's base).
        SELECT m.transaction_id, m.merchant_count, m.count_7d, m.count_30d, m.count_base
        FROM (
            SELECT r.transaction_id,
                   count(*) FILTER (WHERE r.transaction_id IS NULL) OVER merchant_window AS merchant_count,
                   count(*) FILTER (WHERE r.transaction_id IS NULL) OVER week AS count_7d,
                   count(*) FILTER (WHERE r.transaction_id IS NULL) OVER month AS count_30d,
                   count(*) FILTER (WHERE r.transaction_id IS NULL) OVER surge_base AS count_base
            FROM merchant_rows AS r
            WINDOW by_time AS (PARTITION BY r.merchant_id ORDER BY r.ts),
                   merchant_window AS (
                by_time
                RANGE BETWEEN make_interval(secs => coalesce(
                                  (p_rules #>> '{compromised_merchant,window_days}')::double precision, 0) * 86400)
                              PRECEDING
                          AND make_interval(secs => coalesce(
                                  (p_rules #>> '{compromised_merchant,delay_days}')::double precision, 0) * 86400 + 0.001)
                              PRECEDING),
                   week AS (by_time RANGE BETWEEN INTERVAL '168 hours' PRECEDING
                                              AND INTERVAL '1 millisecond' PRECEDING),
                   month AS (by_time RANGE BETWEEN INTERVAL '720 hours' PRECEDING
                                               AND INTERVAL '1 millisecond' PRECEDING),
                   -- merchant_surge_7d's base: [ts - 37 days, ts - 7 days).
                   surge_base AS (by_time RANGE BETWEEN INTERVAL '888 hours' PRECEDING
                                                    AND INTERVAL '168:00:00.001' PRECEDING)
        ) AS m
        WHERE m.transaction_id IS NOT NULL
    ),
    merchant_fraud AS (
        -- Per probe: the known fraud among those rows, as known at the time
        -- each count is taken (what fraud_periods says held then):
        -- compromised_merchant at ts - delay (- 1 ms), the users' features at
        -- ts (- 1 ms). Probes without any fraud in reach have no row (0).
        SELECT h.transaction_id,
               count(*) FILTER (
                   WHERE p_rules ? 'compromised_merchant'
                     AND f.ts >= h.ts - p.compromised_merchant_window
                     AND f.ts <= h.ts - p.compromised_merchant_before
                     AND f.known_from <= h.ts - p.compromised_merchant_before
                     AND (f.known_until IS NULL
                          OR f.known_until > h.ts - p.compromised_merchant_before)) AS fraud_count,
               count(*) FILTER (
                   WHERE p.custom_merchant_on
                     AND f.ts >= h.ts - INTERVAL '168 hours'
                     AND f.known_from <= h.ts - INTERVAL '1 millisecond'
                     AND (f.known_until IS NULL
                          OR f.known_until > h.ts - INTERVAL '1 millisecond')) AS fraud_7d,
               count(*) FILTER (
                   WHERE p.custom_merchant_on
                     AND f.ts >= h.ts - INTERVAL '720 hours'
                     AND f.known_from <= h.ts - INTERVAL '1 millisecond'
                     AND (f.known_until IS NULL
                          OR f.known_until > h.ts - INTERVAL '1 millisecond')) AS fraud_30d
        FROM history AS h
        CROSS JOIN parameters AS p
        JOIN fraud_periods AS f
          ON f.merchant_id = h.merchant_id
         AND f.ts < h.ts
         AND f.ts >= h.ts - p.merchant_reach
        WHERE (p_rules ? 'compromised_merchant' OR p.custom_merchant_on)
        GROUP BY h.transaction_id
    ),
    compromised_merchant AS (
        SELECT
            h.transaction_id, h.account_id, h.ts, h.amount,
            'compromised_merchant'::text,
            round(coalesce(f.fraud_count, 0)::numeric / c.merchant_count, 4),
            p.compromised_merchant_min_fraud_share,
            format('merchant %s: %s of its %s transactions from %s to %s days before are known fraud (as known then); the limits are %s and a share of %s',
                   h.merchant_id, coalesce(f.fraud_count, 0), c.merchant_count,
                   p.compromised_merchant_window_days, p.compromised_merchant_delay_days,
                   p.compromised_merchant_min_known_fraud, p.compromised_merchant_min_fraud_share)
        FROM history AS h
        JOIN merchant_counts AS c ON c.transaction_id = h.transaction_id
        JOIN merchant_fraud AS f ON f.transaction_id = h.transaction_id
        CROSS JOIN parameters AS p
        WHERE p_rules ? 'compromised_merchant'
          AND f.fraud_count >= p.compromised_merchant_min_known_fraud
          AND f.fraud_count >= p.compromised_merchant_min_fraud_share * c.merchant_count
    ),
    custom AS (
        -- Users' rules (add_rule), compiled into _custom_rule_events, over
        -- each scored row's features (rule_features).
        SELECT c.*
        FROM parameters AS p
        CROSS JOIN LATERAL _custom_rule_events(
            p_rules,
            -- Features only when a user's rule runs (CASE skips the subquery).
            CASE WHEN p.custom_on THEN ARRAY(
                SELECT ROW(
                    h.transaction_id, h.account_id, h.ts, h.amount, h.merchant_id,
                    h.prior_count,
                    CASE WHEN h.prior_count > 0 THEN round(h.prior_sum / h.prior_count, 4) END,
                    round(extract(epoch FROM h.ts - h.previous_ts), 3),
                    h.count_1h, h.sum_1h, h.count_24h, h.sum_24h,
                    CASE WHEN h.merchant_id IS NOT NULL THEN NOT EXISTS (
                        SELECT FROM transactions AS t
                        WHERE t.account_id = h.account_id
                          AND t.merchant_id = h.merchant_id
                          AND (t.ts, t.transaction_id) < (h.ts, h.transaction_id)) END,
                    -- The merchant features: only for a rule that reads them,
                    -- and for a row with a merchant (else NULL).
                    mc.count_7d,
                    CASE WHEN mc.transaction_id IS NOT NULL THEN coalesce(mf.fraud_7d, 0) END,
                    CASE WHEN mc.count_7d > 0 THEN round(coalesce(mf.fraud_7d, 0)::numeric / mc.count_7d, 4) END,
                    mc.count_30d,
                    CASE WHEN mc.transaction_id IS NOT NULL THEN coalesce(mf.fraud_30d, 0) END,
                    CASE WHEN mc.count_30d > 0 THEN round(coalesce(mf.fraud_30d, 0)::numeric / mc.count_30d, 4) END,
                    -- merchant_surge_7d: the last 7 days' count over the count
                    -- expected in 7 days at the rate of [ts - 37 days, ts - 7
                    -- days), measured from the first row in there (at least 1
                    -- expected); NULL with under 7 days measured.
                    CASE WHEN sb.base_seconds >= 604800
                         THEN round(mc.count_7d * sb.base_seconds
                                    / greatest(mc.count_base * 604800, sb.base_seconds), 4) END
                )::rule_features
                FROM history AS h
                LEFT JOIN merchant_counts AS mc ON p.custom_merchant_on AND mc.transaction_id = h.transaction_id
                LEFT JOIN merchant_fraud AS mf ON p.custom_merchant_on AND mf.transaction_id = h.transaction_id
                -- The merchant's first row in the surge base (one index probe),
                -- in seconds before ts - 7 days (ms exact).
                LEFT JOIN LATERAL (
                    SELECT extract(epoch FROM (h.ts - INTERVAL '168 hours') - min(t.ts)) AS base_seconds
                    FROM transactions AS t
                    WHERE t.merchant_id = h.merchant_id
                      AND t.ts >= h.ts - INTERVAL '888 hours'
                      AND t.ts < h.ts - INTERVAL '168 hours'
                      AND p.custom_merchant_on AND mc.count_base > 0
                ) AS sb ON true
            ) ELSE '{}'::rule_features[] END
        ) AS c
        WHERE p.custom_on
    ),
    events AS (
        SELECT * FROM below_average
        UNION ALL SELECT * FROM amount_spike
        UNION ALL SELECT * FROM large_amount
        UNION ALL SELECT * FROM velocity
        UNION ALL SELECT * FROM rapid_succession
        UNION ALL SELECT * FROM same_timestamp
        UNION ALL SELECT * FROM new_merchant_large
        UNION ALL SELECT * FROM new_merchant_run
        UNION ALL SELECT * FROM compromised_merchant
        UNION ALL SELECT * FROM custom
    )
    SELECT e.transaction_id, e.account_id, e.ts, e.amount, e.rule_id, e.observed, e.threshold, e.reason
    FROM events AS e;
$$;

COMMENT ON FUNCTION _evaluate_from(jsonb, bigint[], timestamptz[], bigint[], bigint[], numeric[], timestamptz[], bigint[]) IS
    'The rule code: fired rules on each given account''s transactions from a position on (up to an optional bound), given the count and sum of amounts before it.';

REVOKE ALL ON FUNCTION _evaluate_from(jsonb, bigint[], timestamptz[], bigint[], bigint[], numeric[], timestamptz[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _evaluate_from(jsonb, bigint[], timestamptz[], bigint[], bigint[], numeric[], timestamptz[], bigint[])
    TO pgfraud_app, pgfraud_readonly;
