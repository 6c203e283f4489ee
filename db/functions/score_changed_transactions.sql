-- score_changed_transactions() -> trigger
--
-- Statement-level trigger function on `transactions`: whatever path stores
-- rows (HTTP, store_transactions, pgfraud load, COPY or INSERT in psql), the
-- statement's rows are scored set-based in the same database transaction,
-- once per statement (a whole COPY in one pass): per account, the earliest
-- changed position and the change in count and sum go to _rescore_accounts.
--   INSERT: the new rows (transition table new_rows);
--   DELETE: the removed rows (old_rows), with negative deltas; their alerts go;
--   UPDATE: both (an account_id change touches both accounts);
--   TRUNCATE: alerts, shadow alerts and account_states are emptied (reviews
--   are kept).
-- When a live rule reads other accounts' rows at a merchant
-- (compromised_merchant, a user's rule reading the merchant features:
-- _merchant_rules_delay), a row stored, removed or changed at a merchant
-- also changes what that merchant's LATER rows of other accounts read: those
-- accounts (_merchant_neighbour_positions) are re-scored in the same call,
-- from their earliest such row to their latest, with zero deltas. One call, so every
-- account's account_states row is locked in one account_id order before any
-- alert is touched (see _rescore_accounts): no deadlock between statements,
-- labels and reviews re-scoring the same accounts. In-order arrivals have no
-- later rows: one index probe per merchant.
-- Each added row then gets its decision (_record_decisions, issue 17).
-- SECURITY DEFINER: the service role may INSERT into transactions but not
-- write alerts or account_states; this function (owned by the schema owner)
-- does, with a fixed search_path.
CREATE OR REPLACE FUNCTION score_changed_transactions()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
SET jit = off
AS $$
DECLARE
    v_changed text;
    v_account_ids bigint[];
    v_from_ts timestamptz[];
    v_from_transaction_ids bigint[];
    v_delta_counts bigint[];
    v_delta_sums numeric[];
    v_until_ts timestamptz[];
    v_until_transaction_ids bigint[];
    v_merchant_rules boolean;
    v_merchant_ids bigint[];
    v_after_ts timestamptz[];
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE alerts, account_states, shadow_alerts;
        RETURN NULL;
    END IF;
    -- The merchant rules read other accounts' rows at the same merchant:
    -- two statements storing at one merchant at once would each score
    -- without the other's rows (not committed yet), and neither's re-scoring
    -- of the merchant's later rows would see them either. So when such a
    -- rule is on, a statement first takes the locks of the merchants it
    -- touches (_lock_merchants: in one bucket order, before the rule-change
    -- lock and the accounts' rows, as labels and reviews do): a concurrent
    -- one waits for this one's commit, and then (READ COMMITTED, the
    -- default: each statement below sees what committed before it started)
    -- scores with its rows.
    v_changed := CASE TG_OP
        WHEN 'INSERT' THEN
            'SELECT n.account_id, n.ts, n.transaction_id, 1 AS sign, n.amount, n.merchant_id'
            ' FROM new_rows AS n'
        WHEN 'DELETE' THEN
            'SELECT o.account_id, o.ts, o.transaction_id, -1 AS sign, o.amount, o.merchant_id'
            ' FROM old_rows AS o'
        ELSE
            'SELECT o.account_id, o.ts, o.transaction_id, -1 AS sign, o.amount, o.merchant_id'
            ' FROM old_rows AS o'
            ' UNION ALL '
            'SELECT n.account_id, n.ts, n.transaction_id, 1 AS sign, n.amount, n.merchant_id'
            ' FROM new_rows AS n'
    END;
    v_merchant_rules := _merchant_rules_delay() IS NOT NULL;
    IF v_merchant_rules THEN
        EXECUTE format(
            'SELECT array_agg(m.merchant_id), array_agg(v.ts)'
            ' FROM (SELECT c.merchant_id, min(c.ts) AS first_ts, max(c.ts) AS last_ts'
            '       FROM (%s) AS c'
            '       WHERE c.merchant_id IS NOT NULL GROUP BY c.merchant_id) AS m'
            ' CROSS JOIN LATERAL (VALUES (m.first_ts), (m.last_ts)) AS v(ts)',
            v_changed)
        INTO v_merchant_ids, v_after_ts;
        PERFORM _lock_merchants(v_merchant_ids);
    END IF;
    -- The shared side of the rule-change lock (taken again, at no cost, by
    -- _rescore_accounts): a transaction switching a merchant rule on holds
    -- the exclusive side until it commits, so the check below then sees it
    -- on and the neighbours are re-scored too (its own re-scoring did not
    -- see this statement's rows).
    PERFORM pg_advisory_xact_lock_shared(7231546390112208);
    IF NOT v_merchant_rules AND _merchant_rules_delay() IS NOT NULL THEN
        -- Switched on meanwhile (rare): the merchants' locks after all.
        v_merchant_rules := true;
        EXECUTE format(
            'SELECT array_agg(m.merchant_id), array_agg(v.ts)'
            ' FROM (SELECT c.merchant_id, min(c.ts) AS first_ts, max(c.ts) AS last_ts'
            '       FROM (%s) AS c'
            '       WHERE c.merchant_id IS NOT NULL GROUP BY c.merchant_id) AS m'
            ' CROSS JOIN LATERAL (VALUES (m.first_ts), (m.last_ts)) AS v(ts)',
            v_changed)
        INTO v_merchant_ids, v_after_ts;
        PERFORM _lock_merchants(v_merchant_ids);
    END IF;
    IF TG_OP = 'INSERT' THEN
        -- The common case, as a static query (planned once per session).
        WITH firsts AS (
            SELECT DISTINCT ON (n.account_id) n.account_id, n.ts, n.transaction_id
            FROM new_rows AS n
            ORDER BY n.account_id, n.ts, n.transaction_id
        ),
        deltas AS (
            SELECT n.account_id, count(*) AS delta_count, sum(n.amount) AS delta_sum
            FROM new_rows AS n
            GROUP BY n.account_id
        )
        SELECT array_agg(f.account_id ORDER BY f.account_id),
               array_agg(f.ts ORDER BY f.account_id),
               array_agg(f.transaction_id ORDER BY f.account_id),
               array_agg(d.delta_count ORDER BY f.account_id),
               array_agg(d.delta_sum ORDER BY f.account_id)
        INTO v_account_ids, v_from_ts, v_from_transaction_ids, v_delta_counts, v_delta_sums
        FROM firsts AS f
        JOIN deltas AS d ON d.account_id = f.account_id;
        -- A big statement into a table whose statistics count fewer rows
        -- than it adds (never analyzed, or analyzed by autovacuum in the
        -- middle of this load, which saw none of its uncommitted rows:
        -- reltuples 0 over thousands of pages) would be scored with plans
        -- made for an empty table: a nested loop over a materialized scan
        -- of transactions, quadratic (a 1M-row COPY ran for over 10 minutes
        -- instead of 17 s). ANALYZE here counts this transaction's own rows;
        -- it samples 30,000 rows (about 0.1 s at 1M).
        IF (SELECT sum(d) FROM unnest(v_delta_counts) AS d) > greatest(10000,
               (SELECT c.reltuples FROM pg_class AS c WHERE c.oid = 'transactions'::regclass)) THEN
            ANALYZE transactions;
        END IF;
    ELSE
        -- Removed rows count negatively; only the transition tables this
        -- trigger has can be named, hence the text per operation.
        EXECUTE format($query$
            WITH changed AS (SELECT c.account_id, c.ts, c.transaction_id, c.sign, c.amount
                             FROM (%s) AS c),
            firsts AS (
                SELECT DISTINCT ON (c.account_id) c.account_id, c.ts, c.transaction_id
                FROM changed AS c
                ORDER BY c.account_id, c.ts, c.transaction_id
            ),
            deltas AS (
                SELECT c.account_id, sum(c.sign) AS delta_count, sum(c.sign * c.amount) AS delta_sum
                FROM changed AS c
                GROUP BY c.account_id
            )
            SELECT array_agg(f.account_id ORDER BY f.account_id),
                   array_agg(f.ts ORDER BY f.account_id),
                   array_agg(f.transaction_id ORDER BY f.account_id),
                   array_agg(d.delta_count ORDER BY f.account_id),
                   array_agg(d.delta_sum ORDER BY f.account_id)
            FROM firsts AS f
            JOIN deltas AS d ON d.account_id = f.account_id
        $query$, v_changed)
        INTO v_account_ids, v_from_ts, v_from_transaction_ids, v_delta_counts, v_delta_sums;
    END IF;
    IF v_merchant_rules AND v_merchant_ids IS NOT NULL THEN
        -- The other accounts' later rows at these merchants join the call:
        -- per account the earlier of its own position and its neighbour
        -- position, its own delta (0 for a neighbour alone), and for a
        -- neighbour alone the bound of its rows to re-score (its latest row
        -- within the rules' reach: its later rows read nothing that
        -- changed); an account with rows of its own changed, to its end.
        WITH own AS (
            SELECT o.account_id, o.from_ts, o.from_transaction_id, o.delta_count, o.delta_sum
            FROM unnest(v_account_ids, v_from_ts, v_from_transaction_ids, v_delta_counts,
                        v_delta_sums)
                AS o(account_id, from_ts, from_transaction_id, delta_count, delta_sum)
        ),
        neighbours AS MATERIALIZED (
            SELECT n.account_id, n.from_ts, n.from_transaction_id, n.until_ts,
                   n.until_transaction_id
            FROM _merchant_neighbour_positions(v_merchant_ids, v_after_ts) AS n
        ),
        positions AS (
            SELECT o.account_id, o.from_ts, o.from_transaction_id FROM own AS o
            UNION ALL
            SELECT n.account_id, n.from_ts, n.from_transaction_id
            FROM neighbours AS n
        ),
        earliest AS (
            SELECT DISTINCT ON (p.account_id) p.account_id, p.from_ts, p.from_transaction_id
            FROM positions AS p
            ORDER BY p.account_id, p.from_ts, p.from_transaction_id
        )
        SELECT array_agg(e.account_id ORDER BY e.account_id),
               array_agg(e.from_ts ORDER BY e.account_id),
               array_agg(e.from_transaction_id ORDER BY e.account_id),
               array_agg(coalesce(o.delta_count, 0) ORDER BY e.account_id),
               array_agg(coalesce(o.delta_sum, 0) ORDER BY e.account_id),
               array_agg(CASE WHEN o.account_id IS NULL THEN n.until_ts END ORDER BY e.account_id),
               array_agg(CASE WHEN o.account_id IS NULL THEN n.until_transaction_id END
                         ORDER BY e.account_id)
        INTO v_account_ids, v_from_ts, v_from_transaction_ids, v_delta_counts, v_delta_sums,
             v_until_ts, v_until_transaction_ids
        FROM earliest AS e
        LEFT JOIN own AS o ON o.account_id = e.account_id
        LEFT JOIN neighbours AS n ON n.account_id = e.account_id;
    END IF;
    PERFORM _rescore_accounts(v_account_ids, v_from_ts, v_from_transaction_ids,
                              v_delta_counts, v_delta_sums, v_until_ts, v_until_transaction_ids);
    -- Decisions (issue 17): one per added row, from the alerts just written,
    -- never rewritten (an UPDATE or DELETE leaves decisions as answered).
    IF TG_OP = 'INSERT' THEN
        PERFORM _record_decisions(ARRAY(SELECT n.account_id FROM new_rows AS n ORDER BY n.transaction_id),
                                  ARRAY(SELECT n.transaction_id FROM new_rows AS n ORDER BY n.transaction_id));
    END IF;
    -- End of decisions (issue 17).
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION score_changed_transactions() IS
    'Trigger: scores the rows a statement adds, removes or changes in transactions (set-based, same database transaction) and keeps alerts and account_states exact.';

REVOKE ALL ON FUNCTION score_changed_transactions() FROM PUBLIC;

CREATE OR REPLACE TRIGGER transactions_score_inserted
    AFTER INSERT ON transactions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION score_changed_transactions();

CREATE OR REPLACE TRIGGER transactions_score_deleted
    AFTER DELETE ON transactions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION score_changed_transactions();

CREATE OR REPLACE TRIGGER transactions_score_updated
    AFTER UPDATE ON transactions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION score_changed_transactions();

CREATE OR REPLACE TRIGGER transactions_score_truncated
    AFTER TRUNCATE ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION score_changed_transactions();
