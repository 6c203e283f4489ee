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
--   TRUNCATE: alerts and account_states are emptied (reviews are kept).
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
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE alerts, account_states;
        RETURN NULL;
    END IF;
    -- compromised_merchant reads other accounts' rows at the same merchant:
    -- two statements storing at one merchant at once would each score
    -- without the other's rows (not committed yet), and neither's re-scoring
    -- of the merchant's later rows would see them either. So when the rule
    -- is on, a statement first takes a lock per merchant it touches (hashed
    -- into 256 buckets, so a big load holds at most 256 locks; taken in
    -- order, so no deadlock): a concurrent one waits for this one's commit,
    -- and then (READ COMMITTED, the default: each statement below sees what
    -- committed before it started) scores with its rows.
    IF EXISTS (SELECT FROM rules AS r WHERE r.rule_id = 'compromised_merchant' AND r.enabled) THEN
        EXECUTE format(
            'SELECT count(pg_advisory_xact_lock(72315463, b.bucket))'
            ' FROM (SELECT DISTINCT hashint8(c.merchant_id) & 255 AS bucket'
            '       FROM (%s) AS c WHERE c.merchant_id IS NOT NULL ORDER BY 1) AS b',
            CASE TG_OP
                WHEN 'INSERT' THEN 'SELECT n.merchant_id FROM new_rows AS n'
                WHEN 'DELETE' THEN 'SELECT o.merchant_id FROM old_rows AS o'
                ELSE 'SELECT o.merchant_id FROM old_rows AS o'
                     ' UNION ALL SELECT n.merchant_id FROM new_rows AS n'
            END);
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
        v_changed := CASE TG_OP
            WHEN 'DELETE' THEN
                'SELECT o.account_id, o.ts, o.transaction_id, -1 AS sign, o.amount FROM old_rows AS o'
            ELSE
                'SELECT o.account_id, o.ts, o.transaction_id, -1 AS sign, o.amount FROM old_rows AS o'
                ' UNION ALL '
                'SELECT n.account_id, n.ts, n.transaction_id, 1 AS sign, n.amount FROM new_rows AS n'
        END;
        EXECUTE format($query$
            WITH changed AS (%s),
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
    PERFORM _rescore_accounts(v_account_ids, v_from_ts, v_from_transaction_ids,
                              v_delta_counts, v_delta_sums);
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
