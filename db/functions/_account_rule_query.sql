-- _account_rule_query() -> text
-- _account_rule_query(p_merchant_rules boolean) -> text
--
-- The rule code for one account, as query text: the body of _evaluate_from
-- (the one place the rules are written) with its set of starting positions
-- (an unnest of five arrays joined LATERAL to a probe of transactions)
-- replaced by one account's position, every join of an account's rows on
-- another row's account_id replaced by account_id = $2, and p_rules by $1.
-- Parameters of the text: $1 jsonb (rule_id -> parameters, as p_rules),
-- $2 bigint (account_id), $3 timestamptz and $4 bigint (the position
-- (ts, transaction_id) from which rows are scored), $5 bigint and $6 numeric
-- (the count and sum of amounts of the account's rows strictly before the
-- position). It returns the columns of fraud_event, as
-- _evaluate_from(p_rules, ARRAY[$2], ARRAY[$3], ARRAY[$4], ARRAY[$5], ARRAY[$6])
-- does (tests/test_account_scoring.py checks both give the same rows).
-- Every read of transactions in the text is filtered on account_id = $2
-- except those of the merchant rules (compromised_merchant, and users'
-- rules that read merchant_fraud_* / merchant_transactions_*), which read
-- the merchant's rows of every account: see docs/scoring-per-account.md.
-- Run by the per-account path (_rescore_account) with EXECUTE ... USING in
-- PL/pgSQL, so Citus can route it to the account's worker: no LANGUAGE sql
-- function over the per-account tables, no forced generic plan.
-- p_merchant_rules false (no live rule reads the merchant features: the
-- caller checks _merchant_rules_delay() IS NULL): the merchant section's
-- reads of every account (merchant_bounds, merchant_span, fraud_periods)
-- become empty relations of the same columns, which they are then anyway
-- (merchant_bounds is empty without such a rule), and merchant_surge_7d's
-- probe of the merchant's base (sb) a NULL, so every read of a
-- per-account table in the text names account_id = $2 and Citus routes it
-- to one shard. The no-argument form is _account_rule_query(true).
-- Errors: internal_error (XX000) when _evaluate_from's text no
-- longer has the shape this rewrites (a change there must update this).
CREATE OR REPLACE FUNCTION _account_rule_query(p_merchant_rules boolean)
RETURNS text
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_source text;
    v_query text;
BEGIN
    SELECT p.prosrc INTO v_source
    FROM pg_proc AS p
    WHERE p.oid = '_evaluate_from(jsonb, bigint[], timestamptz[], bigint[], bigint[], numeric[], timestamptz[], bigint[])'::regprocedure;
    v_query := regexp_replace(
        v_source,
        '\n    starts AS \(.*?\) AS b ON true\n    \),',
        E'\n    starts AS (\n'
        '        SELECT $2::bigint AS account_id, $3::timestamptz AS from_ts,\n'
        '               $4::bigint AS from_transaction_id, $5::bigint AS base_count,\n'
        '               $6::numeric AS base_sum,\n'
        '               ''infinity''::timestamptz AS until_ts,\n'
        '               9223372036854775807::bigint AS until_transaction_id,\n'
        '               (SELECT t.ts FROM transactions AS t\n'
        '                WHERE t.account_id = $2 AND t.ts < $3\n'
        '                ORDER BY t.ts DESC, t.transaction_id DESC LIMIT 1) AS before_ts\n'
        '    ),');
    -- Joins of one account's rows to another row of the same account.
    v_query := regexp_replace(v_query, '\m([a-z]+)\.account_id = [a-z]+\.account_id\M',
                              '\1.account_id = $2', 'g');
    v_query := regexp_replace(v_query, '\mp_rules\M', '$1', 'g');
    IF NOT p_merchant_rules THEN
        v_query := regexp_replace(
            v_query,
            '\n    merchant_bounds AS \(.*?\n    \),\n(    reviewed AS \(.*?\n    \),\n)?    merchant_span AS MATERIALIZED \(.*?\n    \),\n    fraud_periods AS \(.*?\n    \),\n',
            E'\n    merchant_bounds AS (\n'
            '        SELECT NULL::bigint AS merchant_id, NULL::timestamptz AS first_ts,\n'
            '               NULL::timestamptz AS last_ts WHERE false\n'
            '    ),\n'
            '    merchant_span AS (\n'
            '        SELECT NULL::bigint AS merchant_id, NULL::timestamptz AS ts,\n'
            '               NULL::bigint AS transaction_id, NULL::timestamptz AS label_known_at,\n'
            '               false AS is_reviewed WHERE false\n'
            '    ),\n'
            '    fraud_periods AS (\n'
            '        SELECT NULL::bigint AS merchant_id, NULL::timestamptz AS ts,\n'
            '               NULL::timestamptz AS known_from, NULL::timestamptz AS known_until\n'
            '        WHERE false\n'
            '    ),\n');
        -- merchant_surge_7d's probe of the merchant's first row in its base
        -- (every account's rows at the merchant): NULL, as it is then anyway
        -- (it reads nothing unless a rule reads the merchant features).
        v_query := regexp_replace(
            v_query,
            '\n( +)LEFT JOIN LATERAL \(\n +SELECT extract\(epoch FROM \(h\.ts - INTERVAL ''168 hours''\) - min\(t\.ts\)\) AS base_seconds\n.*?\n +\) AS sb ON true',
            E'\n\\1LEFT JOIN LATERAL (SELECT NULL::numeric AS base_seconds) AS sb ON true');
        IF v_query ~ '\mFROM (reviews|fraud_labels) AS'
           OR v_query ~ 'WHERE t\.merchant_id = h\.merchant_id' THEN
            v_query := NULL;  -- the shape changed: refused below
        END IF;
    END IF;
    -- A query to embed: without the body's closing semicolon.
    v_query := regexp_replace(v_query, ';\s*$', '');
    IF v_query IS NULL OR v_query ~ '\mp_(account_ids|from_ts|from_transaction_ids|base_counts|base_sums|until_ts|until_transaction_ids)\M'
       OR v_query !~ 'WHERE t\.account_id = \$2 AND t\.ts < \$3' THEN
        RAISE EXCEPTION '_evaluate_from no longer has the shape _account_rule_query rewrites'
            USING ERRCODE = 'XX000',
                  HINT = 'update db/functions/_account_rule_query.sql with _evaluate_from.sql';
    END IF;
    RETURN v_query;
END;
$$;

COMMENT ON FUNCTION _account_rule_query(boolean) IS
    'The rule code (_evaluate_from''s text) for one account, as query text with $1 rules jsonb, $2 account_id, $3/$4 the position (ts, transaction_id), $5/$6 the count and sum before it; p_merchant_rules false: the merchant section empty (every read on the account); XX000 if _evaluate_from changed shape.';

REVOKE ALL ON FUNCTION _account_rule_query(boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION _account_rule_query()
RETURNS text
LANGUAGE sql
STABLE
AS $$
    SELECT _account_rule_query(true);
$$;

COMMENT ON FUNCTION _account_rule_query() IS
    'The rule code (_evaluate_from''s text) for one account with the merchant section: _account_rule_query(true).';

REVOKE ALL ON FUNCTION _account_rule_query() FROM PUBLIC;
