-- tune_rules(p_train_from timestamptz, p_train_to timestamptz,
--            p_valid_from timestamptz, p_valid_to timestamptz,
--            p_max_alerts_per_1000 numeric, p_min_precision numeric,
--            p_candidates text[], p_min_marginal_precision numeric) -> jsonb
--
-- Chooses which rules run and their parameters from labelled history: on the
-- training period [p_train_from, p_train_to) it maximises recall (known fraud
-- flagged by at least one chosen rule) under the constraint given, an alert
-- budget (flagged transactions per 1,000 transactions at most
-- p_max_alerts_per_1000) and/or a precision floor (flagged fraud / flagged at
-- least p_min_precision), adding only rules whose own new alerts are at
-- least p_min_marginal_precision fraud (NULL: 0.5; see Selection), then
-- measures the chosen set and the live set on both periods. Changes nothing: the chosen set is switched on by PATCH
-- /rules, `pgfraud tune --apply` or change_rule per rule.
--
-- Candidates: p_candidates (NULL: every rule of the rules table, built-in
-- and users'). Known fraud is that of evaluate_rules (a label unless the
-- latest review says false_positive, or a confirmed_fraud review).
--
-- How it is fast: each rule's observation per transaction of both periods (the
-- amount, the amount over the prior average as an exact ratio, the count in
-- a velocity window, the gap to the previous time, ...) is computed once, in
-- one window pass over the account histories up to p_valid_to, for each
-- value of the parameters that shape a window (velocity's window_seconds,
-- min_history); from it, the strictest step of the rule's threshold grid at
-- which the transaction still fires (its level) is one width_bucket. A
-- candidate (rule, parameters) then flags exactly the rows whose level
-- reaches its step, so every threshold of every rule is counted from one
-- table (_tune_observations), never by running the rule code again. The
-- arithmetic is that of _evaluate_from (exact numeric: amount x n >
-- multiplier x sum as a ratio at 30 decimal places, windows in elapsed
-- time), so a candidate's flagged set is the rule code's.
-- The grids (rule_parameter_ranges() bounds every value):
--   large_amount.threshold: the amounts of the training period's known fraud
--       (at most 200 of them, evenly spaced by rank);
--   amount_spike.multiplier 1.5 2 2.5 3 4 5 6 8 10 15 20, for min_history
--       1 3 5 10 (window_days 0: the whole past);
--   below_average.factor 0.9 0.7 0.5 0.3 0.2 0.1 0.05, min_history 1 3 5 10
--       (window_days 0);
--   velocity.max_transactions 1 2 3 4 5 6 8 10 15 20 for window_seconds
--       60 300 3600 86400;
--   rapid_succession.min_gap_seconds 3600 1800 600 300 120 60 30 10 5 1;
--   same_timestamp.max_transactions 1 2 3 4 5;
--   new_merchant_large.multiplier 1 1.5 2 3 4 5 8 10, min_history 1 3 5 10
--       (unused_days 0: a merchant never paid at before);
--   new_merchant_run, compromised_merchant and users' rules: on or off at
--       their stored parameters, their flags from the rule code itself
--       (score_transactions over both periods, one call), so a rule that reads
--       labels sees them exactly as the rule code and backtests do: only
--       what was known at the judged transaction's time (known_at).
-- Known fraud for the figures (what a rule should catch) is the ground
-- truth, whenever it became known, as in evaluate_rules.
-- Selection (greedy, one parameter set per rule): repeatedly add the
-- candidate that keeps the constraint and adds the most newly caught fraud
-- (ties: fewer new alerts); separately, the one whose new alerts have the
-- highest precision (ties: more caught); and separately, the one with the
-- largest surplus, new fraud caught - p_min_marginal_precision x new
-- alerts (each alert costing that share of a fraud; ties: more caught),
-- which takes a precise rule before a broad one that would catch the same
-- fraud among many more alerts. In all three, a candidate is
-- added only if its marginal precision (the fraud among the training
-- transactions it flags that no chosen rule flags yet, over those
-- transactions) is at least p_min_marginal_precision (default 0.5: at
-- least one alert in two that a review team reads is fraud). The runs are
-- compared in that order with the best so far: the one that catches more
-- on the training period wins only if the fraud it catches more is at
-- least p_min_marginal_precision times the alerts it raises more;
-- otherwise the other (ties: fewer alerts, then the earlier). Without the
-- floor a budget alone is filled with whatever catches one more fraud, at
-- any cost in alerts: 2 of 10 alerts per 1,000 were fraud on the
-- realistic mix (docs/detection.md); 0 turns it off (then the surplus run
-- is the recall run).
--
-- Returns {"chosen": {rule_id: parameters} (validate_rules' normalised form;
-- {} when no candidate fits the constraint), "live": the enabled rules,
-- "search": {"transactions", "labelled", "flagged", "caught", "steps":
-- [{rule_id, parameters, flagged, caught}] (cumulative on the training
-- period, in the order chosen), "candidates": how many (rule, parameters)
-- were counted, "min_marginal_precision": the floor that ran}, "figures":
-- {"chosen"|"live": {"training"|"validation": backtest_rules rows}}}. The
-- live set's are backtest_rules' own (its flags are the stored alerts); the
-- chosen set's are counted, as evaluate_rules counts them, from the flags
-- the search already has on both periods (the rule code's, as above), so
-- they equal backtest_rules(chosen, ...) and `pgfraud evaluate --rules
-- <chosen>` on each period without running the rule code again
-- (tests/test_tune.py checks that on generated data). "decisions":
-- {"chosen"|"live": {"training"|"validation": {"policy", "outcomes"}} (NULL
-- for an empty set)}: what evaluate_decisions(set, NULL, from, to) and
-- resolve_backtest_policy(NULL) give, counted the same way from the same
-- flags (the live set's: its stored alerts).
-- Errors: PF001 (invalid_input) with COLUMN naming the field: train_from,
-- train_to (a missing or empty training period, no transaction or no known
-- fraud in it), valid_from (before train_to), valid_to (missing or empty
-- validation period, no transaction in it), max_alerts_per_1000 (not above
-- 0; or neither constraint given), min_precision (not in (0, 1]),
-- min_marginal_precision (not in [0, 1]), candidates (an unknown rule, or
-- none).
-- The seven-argument form of earlier releases is dropped: two forms would
-- make a call with seven arguments ambiguous.
DROP FUNCTION IF EXISTS tune_rules(timestamptz, timestamptz, timestamptz, timestamptz, numeric, numeric, text[]);

CREATE OR REPLACE FUNCTION tune_rules(
    p_train_from timestamptz,
    p_train_to timestamptz,
    p_valid_from timestamptz,
    p_valid_to timestamptz,
    p_max_alerts_per_1000 numeric DEFAULT NULL,
    p_min_precision numeric DEFAULT NULL,
    p_candidates text[] DEFAULT NULL,
    p_min_marginal_precision numeric DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
SET jit = off
SET work_mem = '256MB'
SET client_min_messages = warning
AS $$
DECLARE
    v_unknown text;
    v_candidates text[];
    v_transactions bigint;
    v_labelled bigint;
    v_valid_transactions bigint;
    v_fixed jsonb;
    v_count integer;
    v_strategy text;
    v_best record;
    v_flagged bigint;
    v_caught bigint;
    v_steps jsonb;
    v_chosen jsonb;
    v_result jsonb := NULL;
    v_result_caught bigint;
    v_result_flagged bigint;
    v_marginal numeric := coalesce(p_min_marginal_precision, 0.5);
    v_picks integer[];
    v_pick_steps integer[];
    v_result_picks integer[];
    v_result_pick_steps integer[];
    v_live_training jsonb;
    v_live_validation jsonb;
    v_period text;
    v_chosen_figures jsonb;
    v_policy jsonb;
    v_chosen_decisions jsonb;
    v_decisions jsonb;
    v_set text;
BEGIN
    -- The input, each problem naming its field.
    IF p_train_from IS NULL THEN
        RAISE EXCEPTION 'the training period needs a start (train_from)'
            USING ERRCODE = 'PF001', COLUMN = 'train_from';
    END IF;
    IF p_train_to IS NULL OR p_train_to <= p_train_from THEN
        RAISE EXCEPTION 'the training period must end (train_to) after it starts (train_from)'
            USING ERRCODE = 'PF001', COLUMN = 'train_to';
    END IF;
    IF p_valid_from IS NULL OR p_valid_from < p_train_to THEN
        RAISE EXCEPTION 'the validation period must start (valid_from) at or after the end of the training period (train_to)'
            USING ERRCODE = 'PF001', COLUMN = 'valid_from';
    END IF;
    IF p_valid_to IS NULL OR p_valid_to <= p_valid_from THEN
        RAISE EXCEPTION 'the validation period must end (valid_to) after it starts (valid_from)'
            USING ERRCODE = 'PF001', COLUMN = 'valid_to';
    END IF;
    IF p_max_alerts_per_1000 IS NULL AND p_min_precision IS NULL THEN
        RAISE EXCEPTION 'give an alert budget (max_alerts_per_1000) or a precision floor (min_precision)'
            USING ERRCODE = 'PF001', COLUMN = 'max_alerts_per_1000';
    END IF;
    IF p_max_alerts_per_1000 IS NOT NULL AND NOT p_max_alerts_per_1000 > 0 THEN
        RAISE EXCEPTION 'the alert budget max_alerts_per_1000 must be above 0; got %', p_max_alerts_per_1000
            USING ERRCODE = 'PF001', COLUMN = 'max_alerts_per_1000';
    END IF;
    IF p_min_precision IS NOT NULL AND NOT (p_min_precision > 0 AND p_min_precision <= 1) THEN
        RAISE EXCEPTION 'the precision floor min_precision must be above 0 and at most 1; got %', p_min_precision
            USING ERRCODE = 'PF001', COLUMN = 'min_precision';
    END IF;
    IF p_min_marginal_precision IS NOT NULL
       AND NOT (p_min_marginal_precision >= 0 AND p_min_marginal_precision <= 1) THEN
        RAISE EXCEPTION 'the marginal precision floor min_marginal_precision must be at least 0 and at most 1; got %',
            p_min_marginal_precision
            USING ERRCODE = 'PF001', COLUMN = 'min_marginal_precision';
    END IF;
    IF p_candidates IS NOT NULL THEN
        SELECT c INTO v_unknown
        FROM unnest(p_candidates) AS c
        WHERE c IS NULL OR NOT EXISTS (SELECT FROM rules AS r WHERE r.rule_id = c)
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'unknown rule % among the candidates; the rules are %', coalesce(v_unknown, 'null'),
                (SELECT string_agg(r.rule_id, ', ' ORDER BY r.rule_id) FROM rules AS r)
                USING ERRCODE = 'PF001', COLUMN = 'candidates';
        END IF;
        IF cardinality(p_candidates) = 0 THEN
            RAISE EXCEPTION 'name at least one candidate rule'
                USING ERRCODE = 'PF001', COLUMN = 'candidates';
        END IF;
    END IF;
    v_candidates := coalesce(p_candidates, ARRAY(SELECT r.rule_id FROM rules AS r ORDER BY r.rule_id));

    SELECT count(*) INTO v_valid_transactions
    FROM transactions AS t WHERE t.ts >= p_valid_from AND t.ts < p_valid_to;
    IF v_valid_transactions = 0 THEN
        RAISE EXCEPTION 'the validation period [valid_from, valid_to) holds no transaction'
            USING ERRCODE = 'PF001', COLUMN = 'valid_to';
    END IF;

    DROP TABLE IF EXISTS _tune_rows, _tune_variants, _tune_levels, _tune_observations, _tune_counts,
        _tune_open, _tune_flagged, _tune_new, _tune_set_flags;

    -- Every transaction of the training and of the validation period with
    -- the features the rules observe, computed over each account's whole
    -- history before p_valid_to (as the rule code computes them from
    -- scratch), whether it is known fraud and under which scenario (as
    -- evaluate_rules counts it), and which period it is in. The search
    -- reads the training rows; the chosen set's figures read both.
    -- EXECUTE plans it with the periods' values: planned for unknown
    -- values (plpgsql's generic plan of a utility statement), it probes the
    -- transactions by id once per row (79 s against 14 s at 1M rows).
    EXECUTE $query$
        CREATE TEMP TABLE _tune_rows ON COMMIT DROP AS
        WITH decisions AS (
            SELECT DISTINCT ON (rv.transaction_id) rv.transaction_id, rv.status
            FROM reviews AS rv
            ORDER BY rv.transaction_id, rv.review_id DESC
        ),
        known AS (
            SELECT coalesce(l.transaction_id, d.transaction_id) AS transaction_id,
                   coalesce(l.scenario, 'reviewed') AS scenario
            FROM fraud_labels AS l
            FULL JOIN decisions AS d ON d.transaction_id = l.transaction_id
            WHERE d.status IS DISTINCT FROM 'false_positive'
        ),
        windowed AS (
            SELECT t.transaction_id, t.account_id, t.ts, t.amount, t.merchant_id,
                   count(*) OVER prior AS prior_count,
                   coalesce(sum(t.amount) OVER prior, 0) AS prior_sum,
                   max(t.ts) OVER earlier AS previous_ts,
                   count(*) OVER prior - count(*) OVER earlier + 1 AS same_time_count,
                   count(*) OVER prior - count(*) OVER out_60 + 1 AS count_60,
                   count(*) OVER prior - count(*) OVER out_300 + 1 AS count_300,
                   count(*) OVER prior - count(*) OVER out_3600 + 1 AS count_3600,
                   count(*) OVER prior - count(*) OVER out_86400 + 1 AS count_86400
            FROM transactions AS t
            WHERE t.ts < $4
            WINDOW account_order AS (PARTITION BY t.account_id ORDER BY t.ts, t.transaction_id),
                   prior AS (account_order ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                   by_time AS (PARTITION BY t.account_id ORDER BY t.ts),
                   earlier AS (by_time RANGE BETWEEN UNBOUNDED PRECEDING AND INTERVAL '1 millisecond' PRECEDING),
                   out_60 AS (by_time RANGE BETWEEN UNBOUNDED PRECEDING AND INTERVAL '60 seconds' PRECEDING),
                   out_300 AS (by_time RANGE BETWEEN UNBOUNDED PRECEDING AND INTERVAL '300 seconds' PRECEDING),
                   out_3600 AS (by_time RANGE BETWEEN UNBOUNDED PRECEDING AND INTERVAL '3600 seconds' PRECEDING),
                   out_86400 AS (by_time RANGE BETWEEN UNBOUNDED PRECEDING AND INTERVAL '86400 seconds' PRECEDING)
        ),
        merchant_first AS (
            -- A payment at a known merchant the account never paid at before
            -- (in (ts, transaction_id) order).
            SELECT t.transaction_id,
                   t.merchant_id IS NOT NULL AND NOT EXISTS (
                       SELECT FROM transactions AS u
                       WHERE u.account_id = t.account_id AND u.merchant_id = t.merchant_id
                         AND (u.ts, u.transaction_id) < (t.ts, t.transaction_id)) AS first_at_merchant
            FROM transactions AS t
            WHERE ((t.ts >= $1 AND t.ts < $2) OR (t.ts >= $3 AND t.ts < $4))
              AND t.merchant_id IS NOT NULL
        )
        SELECT w.*,
               CASE WHEN w.prior_sum > 0
                    THEN (w.amount * w.prior_count)::numeric(60, 30) / w.prior_sum END AS ratio,
               coalesce(m.first_at_merchant, false) AS first_at_merchant,
               k.transaction_id IS NOT NULL AS fraud,
               k.scenario,
               w.ts < $2 AS training
        FROM windowed AS w
        LEFT JOIN merchant_first AS m ON m.transaction_id = w.transaction_id
        LEFT JOIN known AS k ON k.transaction_id = w.transaction_id
        WHERE (w.ts >= $1 AND w.ts < $2) OR (w.ts >= $3 AND w.ts < $4)
    $query$
    USING p_train_from, p_train_to, p_valid_from, p_valid_to;

    SELECT count(*), count(*) FILTER (WHERE r.fraud) INTO v_transactions, v_labelled
    FROM _tune_rows AS r WHERE r.training;
    IF v_transactions = 0 THEN
        RAISE EXCEPTION 'the training period [train_from, train_to) holds no transaction'
            USING ERRCODE = 'PF001', COLUMN = 'train_from';
    END IF;
    IF v_labelled = 0 THEN
        RAISE EXCEPTION 'the training period [train_from, train_to) holds no known fraud: load labels first (pgfraud load-labels)'
            USING ERRCODE = 'PF001', COLUMN = 'train_from';
    END IF;

    -- The candidates: (rule, the parameters that stay fixed, the swept
    -- parameter and its grid from loosest to strictest). Step k of a
    -- candidate is fixed || {sweep: grid[k]}; a row fires at step k when its
    -- level >= k.
    CREATE TEMP TABLE _tune_variants (
        candidate_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        rule_id text NOT NULL,
        fixed jsonb NOT NULL,
        sweep text,
        grid numeric[] NOT NULL,
        shape numeric
    ) ON COMMIT DROP;
    INSERT INTO _tune_variants (rule_id, fixed, sweep, grid, shape)
    SELECT v.rule_id, v.fixed, v.sweep, v.grid, v.shape
    FROM (
        SELECT 'amount_spike' AS rule_id, jsonb_build_object('min_history', h, 'window_days', 0) AS fixed,
               'multiplier' AS sweep, '{1.5,2,2.5,3,4,5,6,8,10,15,20}'::numeric[] AS grid, h AS shape
        FROM unnest('{1,3,5,10}'::int[]) AS h
        UNION ALL
        SELECT 'below_average', jsonb_build_object('min_history', h, 'window_days', 0),
               'factor', '{0.9,0.7,0.5,0.3,0.2,0.1,0.05}', h
        FROM unnest('{1,3,5,10}'::int[]) AS h
        UNION ALL
        SELECT 'large_amount', '{}', 'threshold',
               -- The smallest fraud amount of each of up to 200 rank tiles.
               ARRAY(SELECT DISTINCT q.amount
                     FROM (SELECT trim_scale(min(z.amount)) AS amount
                           FROM (SELECT r.amount, ntile(200) OVER (ORDER BY r.amount) AS tile
                                 FROM _tune_rows AS r WHERE r.fraud AND r.training) AS z
                           GROUP BY z.tile) AS q
                     ORDER BY q.amount), NULL
        UNION ALL
        SELECT 'velocity', jsonb_build_object('window_seconds', w), 'max_transactions',
               '{1,2,3,4,5,6,8,10,15,20}', w
        FROM unnest('{60,300,3600,86400}'::int[]) AS w
        UNION ALL
        SELECT 'rapid_succession', '{}', 'min_gap_seconds', '{3600,1800,600,300,120,60,30,10,5,1}', NULL
        UNION ALL
        SELECT 'same_timestamp', '{}', 'max_transactions', '{1,2,3,4,5}', NULL
        UNION ALL
        SELECT 'new_merchant_large', jsonb_build_object('min_history', h, 'unused_days', 0),
               'multiplier', '{1,1.5,2,3,4,5,8,10}', h
        FROM unnest('{1,3,5,10}'::int[]) AS h
        UNION ALL
        -- On or off at the stored parameters: the rule code decides.
        SELECT r.rule_id, r.parameters, NULL, '{1}', NULL
        FROM rules AS r
        WHERE r.rule_id NOT IN ('amount_spike', 'below_average', 'large_amount', 'velocity',
                                'rapid_succession', 'same_timestamp', 'new_merchant_large')
    ) AS v
    WHERE v.rule_id = ANY (v_candidates)
    ORDER BY v.rule_id, v.shape;

    -- Each row's level per swept candidate: the number of grid steps at
    -- which it fires (rows of level 0 are left out). First one level per
    -- row and grid (a width_bucket each), then one row per candidate whose
    -- fixed parameters (min_history, first at the merchant) it passes.
    CREATE TEMP TABLE _tune_levels ON COMMIT DROP AS
    WITH grids AS (
        SELECT v.rule_id, v.grid, ARRAY(SELECT g FROM unnest(v.grid) AS g ORDER BY g) AS ascending
        FROM (SELECT DISTINCT ON (w.rule_id) w.rule_id, w.grid
              FROM _tune_variants AS w
              WHERE w.sweep IS NOT NULL AND cardinality(w.grid) > 0
              ORDER BY w.rule_id, w.candidate_id) AS v
    ),
    g AS (
        SELECT
            (SELECT x.grid FROM grids AS x WHERE x.rule_id = 'large_amount') AS large,
            (SELECT x.grid FROM grids AS x WHERE x.rule_id = 'amount_spike') AS spike,
            (SELECT x.ascending FROM grids AS x WHERE x.rule_id = 'below_average') AS below,
            (SELECT x.grid FROM grids AS x WHERE x.rule_id = 'velocity') AS velocity,
            (SELECT x.ascending FROM grids AS x WHERE x.rule_id = 'rapid_succession') AS rapid,
            (SELECT x.grid FROM grids AS x WHERE x.rule_id = 'same_timestamp') AS same,
            (SELECT x.grid FROM grids AS x WHERE x.rule_id = 'new_merchant_large') AS merchant
    )
    SELECT r.transaction_id, r.fraud, r.training, r.prior_count,
           -- amount >= threshold (grid ascending).
           width_bucket(r.amount, g.large) AS large_level,
           -- amount x n > multiplier x sum (grid ascending); min_history apart.
           CASE WHEN r.prior_count = 0 THEN 0
                WHEN r.prior_sum = 0 THEN CASE WHEN r.amount > 0 THEN cardinality(g.spike) ELSE 0 END
                ELSE width_bucket(r.ratio, g.spike) - (r.ratio = ANY (g.spike))::int END AS spike_level,
           -- amount x n < factor x sum (grid descending): the factors above the ratio.
           CASE WHEN r.prior_count = 0 OR r.prior_sum = 0 THEN 0
                ELSE cardinality(g.below) - width_bucket(r.ratio, g.below) END AS below_level,
           -- count in (ts - window, ts], this one included, > max_transactions.
           width_bucket(r.count_60 - 1, g.velocity) AS velocity_60,
           width_bucket(r.count_300 - 1, g.velocity) AS velocity_300,
           width_bucket(r.count_3600 - 1, g.velocity) AS velocity_3600,
           width_bucket(r.count_86400 - 1, g.velocity) AS velocity_86400,
           -- 0 < ts - the previous earlier time < min_gap (grid descending).
           CASE WHEN r.previous_ts IS NULL THEN 0
                ELSE cardinality(g.rapid) - width_bucket(extract(epoch FROM r.ts - r.previous_ts), g.rapid)
           END AS rapid_level,
           width_bucket(r.same_time_count - 1, g.same) AS same_level,
           -- First payment at the merchant, amount x n > multiplier x sum.
           CASE WHEN NOT r.first_at_merchant OR r.prior_count = 0 THEN 0
                WHEN r.prior_sum = 0 THEN CASE WHEN r.amount > 0 THEN cardinality(g.merchant) ELSE 0 END
                ELSE width_bucket(r.ratio, g.merchant) - (r.ratio = ANY (g.merchant))::int END AS merchant_level
    FROM _tune_rows AS r
    CROSS JOIN g;

    CREATE TEMP TABLE _tune_observations ON COMMIT DROP AS
    SELECT v.candidate_id, l.transaction_id, l.fraud, l.training, l.level
    FROM _tune_variants AS v
    JOIN LATERAL (
        SELECT x.transaction_id, x.fraud, x.training, x.large_level AS level FROM _tune_levels AS x
        WHERE v.rule_id = 'large_amount' AND x.large_level > 0
        UNION ALL
        SELECT x.transaction_id, x.fraud, x.training, x.spike_level FROM _tune_levels AS x
        WHERE v.rule_id = 'amount_spike' AND x.spike_level > 0 AND x.prior_count >= v.shape
        UNION ALL
        SELECT x.transaction_id, x.fraud, x.training, x.below_level FROM _tune_levels AS x
        WHERE v.rule_id = 'below_average' AND x.below_level > 0 AND x.prior_count >= v.shape
        UNION ALL
        SELECT x.transaction_id, x.fraud, x.training,
               CASE v.shape WHEN 60 THEN x.velocity_60 WHEN 300 THEN x.velocity_300
                            WHEN 3600 THEN x.velocity_3600 ELSE x.velocity_86400 END
        FROM _tune_levels AS x
        WHERE v.rule_id = 'velocity'
          AND CASE v.shape WHEN 60 THEN x.velocity_60 WHEN 300 THEN x.velocity_300
                           WHEN 3600 THEN x.velocity_3600 ELSE x.velocity_86400 END > 0
        UNION ALL
        SELECT x.transaction_id, x.fraud, x.training, x.rapid_level FROM _tune_levels AS x
        WHERE v.rule_id = 'rapid_succession' AND x.rapid_level > 0
        UNION ALL
        SELECT x.transaction_id, x.fraud, x.training, x.same_level FROM _tune_levels AS x
        WHERE v.rule_id = 'same_timestamp' AND x.same_level > 0
        UNION ALL
        SELECT x.transaction_id, x.fraud, x.training, x.merchant_level FROM _tune_levels AS x
        WHERE v.rule_id = 'new_merchant_large' AND x.merchant_level > 0 AND x.prior_count >= v.shape
    ) AS l ON true
    WHERE v.sweep IS NOT NULL AND cardinality(v.grid) > 0;

    -- The on/off candidates: the rule code's own flags on both periods, in
    -- one call (score_transactions scores every account's history to its
    -- end whatever the range, so the validation period costs nothing more).
    SELECT jsonb_object_agg(v.rule_id, v.fixed) INTO v_fixed
    FROM _tune_variants AS v WHERE v.sweep IS NULL;
    IF v_fixed IS NOT NULL THEN
        INSERT INTO _tune_observations (candidate_id, transaction_id, fraud, training, level)
        SELECT DISTINCT v.candidate_id, r.transaction_id, r.fraud, r.training, 1
        FROM score_transactions(p_train_from, p_valid_to, v_fixed) AS e
        JOIN _tune_variants AS v ON v.rule_id = e.rule_id AND v.sweep IS NULL
        JOIN _tune_rows AS r ON r.transaction_id = e.transaction_id;
    END IF;

    -- Per candidate and level: the training rows and the fraud among them. Each
    -- greedy run keeps these counts for the rows not yet flagged (_tune_open),
    -- taking off the rows each chosen candidate flags, so a round reads the
    -- small count table, never the observations again.
    -- The search reads the training rows only (the validation rows are read
    -- once, for the chosen set's flags).
    CREATE INDEX ON _tune_observations (candidate_id, level) WHERE training;
    CREATE INDEX ON _tune_observations (transaction_id) WHERE training;
    ANALYZE _tune_observations;
    CREATE TEMP TABLE _tune_counts ON COMMIT DROP AS
    SELECT o.candidate_id, o.level, count(*) AS flagged, count(*) FILTER (WHERE o.fraud) AS caught
    FROM _tune_observations AS o
    WHERE o.training
    GROUP BY o.candidate_id, o.level;
    CREATE TEMP TABLE _tune_open (LIKE _tune_counts) ON COMMIT DROP;
    CREATE TEMP TABLE _tune_flagged (transaction_id bigint PRIMARY KEY, fraud boolean NOT NULL)
        ON COMMIT DROP;
    CREATE TEMP TABLE _tune_new (transaction_id bigint PRIMARY KEY) ON COMMIT DROP;
    FOREACH v_strategy IN ARRAY ARRAY['recall', 'precision', 'surplus'] LOOP
        TRUNCATE _tune_flagged, _tune_open;
        INSERT INTO _tune_open SELECT * FROM _tune_counts;
        v_flagged := 0;
        v_caught := 0;
        v_steps := '[]';
        v_chosen := '{}';
        v_picks := '{}';
        v_pick_steps := '{}';
        LOOP
            WITH steps AS (
                -- Step k flags the open rows of level >= k.
                SELECT s.candidate_id, s.level AS step,
                       sum(s.flagged) OVER newer AS flagged,
                       sum(s.caught) OVER newer AS caught
                FROM _tune_open AS s
                JOIN _tune_variants AS v ON v.candidate_id = s.candidate_id
                WHERE NOT v_chosen ? v.rule_id AND s.flagged > 0
                WINDOW newer AS (PARTITION BY s.candidate_id ORDER BY s.level DESC
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            )
            SELECT s.candidate_id, s.step, s.flagged, s.caught INTO v_best
            FROM steps AS s
            WHERE s.caught > 0
              AND (p_max_alerts_per_1000 IS NULL
                   OR (v_flagged + s.flagged) * 1000 <= p_max_alerts_per_1000 * v_transactions)
              AND (p_min_precision IS NULL
                   OR (v_caught + s.caught) >= p_min_precision * (v_flagged + s.flagged))
              -- The alerts it adds: at least this share of them fraud.
              AND s.caught >= v_marginal * s.flagged
            ORDER BY
                CASE v_strategy WHEN 'recall' THEN s.caught::numeric
                                WHEN 'precision' THEN s.caught::numeric / s.flagged
                                ELSE s.caught - v_marginal * s.flagged END DESC,
                CASE WHEN v_strategy = 'recall' THEN -s.flagged::numeric ELSE s.caught END DESC,
                s.flagged, s.candidate_id, s.step DESC
            LIMIT 1;
            EXIT WHEN NOT FOUND;

            TRUNCATE _tune_new;
            WITH added AS (
                INSERT INTO _tune_flagged (transaction_id, fraud)
                SELECT o.transaction_id, o.fraud
                FROM _tune_observations AS o
                WHERE o.candidate_id = v_best.candidate_id AND o.level >= v_best.step AND o.training
                ON CONFLICT (transaction_id) DO NOTHING
                RETURNING transaction_id
            )
            INSERT INTO _tune_new SELECT a.transaction_id FROM added AS a;
            UPDATE _tune_open AS c
            SET flagged = c.flagged - d.flagged, caught = c.caught - d.caught
            FROM (
                SELECT o.candidate_id, o.level, count(*) AS flagged,
                       count(*) FILTER (WHERE o.fraud) AS caught
                FROM _tune_new AS n
                JOIN _tune_observations AS o ON o.transaction_id = n.transaction_id AND o.training
                GROUP BY o.candidate_id, o.level
            ) AS d
            WHERE c.candidate_id = d.candidate_id AND c.level = d.level;
            v_flagged := v_flagged + v_best.flagged;
            v_caught := v_caught + v_best.caught;
            v_picks := v_picks || v_best.candidate_id;
            v_pick_steps := v_pick_steps || v_best.step::integer;
            SELECT v_chosen || jsonb_build_object(v.rule_id, p.parameters),
                   v_steps || jsonb_build_array(jsonb_build_object(
                       'rule_id', v.rule_id, 'parameters', p.parameters,
                       'flagged', v_flagged, 'caught', v_caught))
            INTO v_chosen, v_steps
            FROM _tune_variants AS v
            CROSS JOIN LATERAL (
                SELECT CASE WHEN v.sweep IS NULL THEN v.fixed
                            ELSE v.fixed || jsonb_build_object(v.sweep, v.grid[v_best.step]) END AS parameters
            ) AS p
            WHERE v.candidate_id = v_best.candidate_id;
        END LOOP;
        -- The run that catches more wins if what it catches more is at least
        -- the marginal floor times the alerts it adds over the other run.
        IF v_result IS NULL
           OR (v_caught > v_result_caught
               AND v_caught - v_result_caught >= v_marginal * (v_flagged - v_result_flagged))
           OR (v_caught < v_result_caught
               AND v_result_caught - v_caught < v_marginal * (v_result_flagged - v_flagged))
           OR (v_caught = v_result_caught AND v_flagged < v_result_flagged) THEN
            v_result := jsonb_build_object(
                'chosen', validate_rules(v_chosen),
                'search', jsonb_build_object(
                    'transactions', v_transactions, 'labelled', v_labelled,
                    'flagged', v_flagged, 'caught', v_caught, 'steps', v_steps));
            v_result_caught := v_caught;
            v_result_flagged := v_flagged;
            v_result_picks := v_picks;
            v_result_pick_steps := v_pick_steps;
        END IF;
    END LOOP;

    v_chosen := v_result -> 'chosen';

    -- The chosen set's flags on both periods: each chosen candidate's
    -- observations at its step (the rule code's flags, as the search
    -- counted them), so its figures need no run of the rule code; and the
    -- live set's: its stored alerts (score_transactions reads them).
    CREATE TEMP TABLE _tune_set_flags ON COMMIT DROP AS
    SELECT DISTINCT 'chosen' AS set_name, v.rule_id, o.transaction_id
    FROM unnest(v_result_picks, v_result_pick_steps) AS c(candidate_id, step)
    JOIN _tune_variants AS v ON v.candidate_id = c.candidate_id
    JOIN _tune_observations AS o ON o.candidate_id = c.candidate_id AND o.level >= c.step;
    INSERT INTO _tune_set_flags (set_name, rule_id, transaction_id)
    SELECT DISTINCT 'live', e.rule_id, e.transaction_id
    FROM score_transactions(p_train_from, p_valid_to) AS e
    JOIN _tune_rows AS r ON r.transaction_id = e.transaction_id;

    -- The live set's figures are backtest_rules' own: its rules' flags are
    -- the stored alerts (score_transactions reads them).
    SELECT jsonb_agg(to_jsonb(b)) INTO v_live_training FROM backtest_rules(NULL, p_train_from, p_train_to) AS b;
    SELECT jsonb_agg(to_jsonb(b)) INTO v_live_validation FROM backtest_rules(NULL, p_valid_from, p_valid_to) AS b;

    -- The chosen set's figures on each period: the rows of
    -- backtest_rules(chosen, from, to), counted from its flags as
    -- evaluate_rules counts them (known fraud and scenarios of _tune_rows).
    FOREACH v_period IN ARRAY ARRAY['training', 'validation'] LOOP
        WITH period_rows AS (
            SELECT r.transaction_id, r.scenario FROM _tune_rows AS r WHERE r.training = (v_period = 'training')
        ),
        flags AS (
            SELECT DISTINCT f.transaction_id, x.rule_id
            FROM _tune_set_flags AS f
            JOIN period_rows AS r ON r.transaction_id = f.transaction_id
            CROSS JOIN LATERAL (VALUES (f.rule_id), ('any')) AS x(rule_id)
            WHERE f.set_name = 'chosen'
        ),
        caught AS (
            SELECT f.rule_id, s.scenario, count(*) AS flags, count(r.scenario) AS true_positives
            FROM flags AS f
            JOIN period_rows AS r ON r.transaction_id = f.transaction_id
            CROSS JOIN LATERAL (VALUES ('all'), (r.scenario)) AS s(scenario)
            WHERE s.scenario IS NOT NULL
            GROUP BY f.rule_id, s.scenario
        ),
        labelled AS (
            SELECT s.scenario, count(*) AS labelled
            FROM period_rows AS r
            CROSS JOIN LATERAL (VALUES ('all'), (r.scenario)) AS s(scenario)
            WHERE r.scenario IS NOT NULL
            GROUP BY s.scenario
        ),
        grid AS (
            SELECT k.rule_id, s.scenario
            FROM (SELECT jsonb_object_keys(v_chosen) AS rule_id UNION SELECT 'any') AS k
            CROSS JOIN (SELECT 'all' AS scenario UNION SELECT l.scenario FROM labelled AS l) AS s
        ),
        total AS (SELECT count(*) AS transactions FROM period_rows)
        SELECT coalesce(v_chosen_figures, '{}') || jsonb_build_object(v_period, jsonb_agg(jsonb_build_object(
                   'rule_id', g.rule_id,
                   'scenario', g.scenario,
                   'labelled', coalesce(n.labelled, 0),
                   'flagged', CASE WHEN g.scenario = 'all' THEN coalesce(c.flags, 0) END,
                   'true_positives', coalesce(c.true_positives, 0),
                   'precision_ratio', CASE WHEN g.scenario = 'all'
                       THEN round(c.true_positives::numeric / nullif(c.flags, 0), 4) END,
                   'recall_ratio', round(coalesce(c.true_positives, 0)::numeric
                                         / nullif(n.labelled, 0), 4),
                   'transactions', t.transactions,
                   'flagged_per_1000', round(
                       CASE WHEN g.scenario = 'all' THEN coalesce(c.flags, 0) END
                       * 1000.0 / nullif(t.transactions, 0), 2))
               ORDER BY g.rule_id = 'any', g.rule_id, g.scenario <> 'all', g.scenario))
        INTO v_chosen_figures
        FROM grid AS g
        CROSS JOIN total AS t
        LEFT JOIN caught AS c ON c.rule_id = g.rule_id AND c.scenario = g.scenario
        LEFT JOIN labelled AS n ON n.scenario = g.scenario;
    END LOOP;

    -- Each set's decisions on each period under the policy in force:
    -- evaluate_decisions(set, NULL, from, to), counted from its flags (a
    -- transaction's score: its fired rules' scores summed; the list entries
    -- in force at its time overrule it: allow, then block). NULL for an
    -- empty set.
    v_policy := resolve_backtest_policy(NULL);
    v_decisions := jsonb_build_object('chosen', NULL, 'live', NULL);
    FOREACH v_set IN ARRAY ARRAY['chosen', 'live'] LOOP
        CONTINUE WHEN (CASE v_set WHEN 'chosen' THEN v_chosen ELSE active_rule_parameters() END) = '{}';
        v_chosen_decisions := NULL;
        FOREACH v_period IN ARRAY ARRAY['training', 'validation'] LOOP
            WITH scope AS (
                SELECT r.transaction_id, r.account_id, r.ts, r.merchant_id, r.fraud
                FROM _tune_rows AS r
                WHERE r.training = (v_period = 'training')
            ),
            fired AS (
                SELECT f.transaction_id,
                       sum(coalesce((v_policy -> 'rule_scores' ->> f.rule_id)::integer,
                                    (v_policy ->> 'default_score')::integer)) AS score
                FROM _tune_set_flags AS f
                JOIN scope AS s ON s.transaction_id = f.transaction_id
                WHERE f.set_name = v_set
                GROUP BY f.transaction_id
            ),
            listed AS (
                SELECT s.transaction_id,
                       bool_or(l.kind = 'allow') AS allowed,
                       bool_or(l.kind = 'block') AS blocked
                FROM scope AS s
                CROSS JOIN LATERAL (VALUES ('account', s.account_id), ('merchant', s.merchant_id))
                    AS k(subject, value)
                JOIN list_entries AS e ON e.value = k.value
                JOIN lists AS l ON l.list_name = e.list_name AND l.subject = k.subject
                WHERE e.added_at <= s.ts
                  AND (e.removed_at IS NULL OR e.removed_at > s.ts)
                  AND (e.expires_at IS NULL OR e.expires_at > s.ts)
                GROUP BY s.transaction_id
            ),
            decided AS (
                SELECT d.score_outcome, d.is_fraud,
                       CASE WHEN d.allowed THEN 'approve'
                            WHEN d.blocked THEN 'decline'
                            ELSE d.score_outcome END AS outcome
                FROM (
                    SELECT CASE WHEN coalesce(f.score, 0) >= (v_policy ->> 'decline_threshold')::integer
                                THEN 'decline'
                                WHEN coalesce(f.score, 0) >= (v_policy ->> 'review_threshold')::integer
                                THEN 'review'
                                ELSE 'approve' END AS score_outcome,
                           coalesce(li.allowed, false) AS allowed,
                           coalesce(li.blocked, false) AS blocked,
                           s.fraud AS is_fraud
                    FROM scope AS s
                    LEFT JOIN fired AS f ON f.transaction_id = s.transaction_id
                    LEFT JOIN listed AS li ON li.transaction_id = s.transaction_id
                ) AS d
            ),
            totals AS (
                SELECT count(*) AS transactions, count(*) FILTER (WHERE d.is_fraud) AS labelled
                FROM decided AS d
            ),
            counted AS (
                SELECT o.n, o.outcome,
                       count(d.outcome) AS transactions,
                       count(*) FILTER (WHERE d.outcome <> d.score_outcome) AS overruled,
                       count(*) FILTER (WHERE d.is_fraud) AS fraud
                FROM (VALUES (1, 'approve'), (2, 'review'), (3, 'decline'), (4, 'review_or_decline'))
                    AS o(n, outcome)
                LEFT JOIN decided AS d
                  ON d.outcome = o.outcome
                  OR (o.outcome = 'review_or_decline' AND d.outcome <> 'approve')
                GROUP BY o.n, o.outcome
            )
            SELECT coalesce(v_chosen_decisions, '{}') || jsonb_build_object(v_period, jsonb_build_object(
                       'policy', v_policy,
                       'outcomes', jsonb_agg(jsonb_build_object(
                           'outcome', c.outcome,
                           'transactions', c.transactions,
                           'per_1000', round(c.transactions * 1000.0 / nullif(t.transactions, 0), 2),
                           'overruled', c.overruled,
                           'labelled', t.labelled,
                           'fraud', c.fraud,
                           'precision_ratio', CASE WHEN c.outcome <> 'approve'
                               THEN round(c.fraud::numeric / nullif(c.transactions, 0), 4) END,
                           'recall_ratio', CASE WHEN c.outcome <> 'approve'
                               THEN round(c.fraud::numeric / nullif(t.labelled, 0), 4) END)
                           ORDER BY c.n)))
            INTO v_chosen_decisions
            FROM counted AS c
            CROSS JOIN totals AS t;
        END LOOP;
        v_decisions := v_decisions || jsonb_build_object(v_set, v_chosen_decisions);
    END LOOP;

    RETURN v_result
        || jsonb_build_object(
            'live', active_rule_parameters(),
            'search', (v_result -> 'search') || jsonb_build_object(
                'candidates', (SELECT coalesce(sum(cardinality(v.grid)), 0) FROM _tune_variants AS v),
                'min_marginal_precision', v_marginal),
            'decisions', v_decisions,
            'figures', jsonb_build_object(
                'chosen', v_chosen_figures,
                'live', jsonb_build_object('training', v_live_training, 'validation', v_live_validation)));
END;
$$;

COMMENT ON FUNCTION tune_rules(timestamptz, timestamptz, timestamptz, timestamptz, numeric, numeric, text[], numeric) IS
    'Chooses rules and parameters maximising recall on [train_from, train_to) under an alert budget per 1,000 and/or a precision floor, each added rule''s new alerts at least min_marginal_precision fraud (default 0.5); reports the chosen and live sets on both periods (backtest_rules figures). Changes nothing. PF001 naming the field.';

REVOKE ALL ON FUNCTION tune_rules(timestamptz, timestamptz, timestamptz, timestamptz, numeric, numeric, text[], numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tune_rules(timestamptz, timestamptz, timestamptz, timestamptz, numeric, numeric, text[], numeric)
    TO pgfraud_app, pgfraud_readonly;
