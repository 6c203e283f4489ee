-- score_account(p_account_id bigint, p_from timestamptz DEFAULT NULL) -> bigint
--
-- The per-account scoring path (issue 19; docs/scoring-per-account.md):
-- re-evaluates one account's transactions with time >= p_from (NULL: all of
-- them) by the live rules and makes its persisted alerts from there on equal
-- the rule code's result (exactly what the set-based path, scoring on
-- arrival, keeps in alerts); sets the account's row of account_states to its
-- transactions' count and sum of amounts (removed when it has none); and
-- writes a decision for each of its transactions with time >= p_from that
-- has none (made now, by the policy and lists in force, as store_transactions
-- does for a new row; an existing decision is never rewritten). Use it after
-- rows were loaded without scoring (store_account_transactions does, and a
-- raw COPY on Citus) or to check an account. Returns the number of new alerts.
-- Every statement is filtered on account_id = p_account_id (PL/pgSQL; no
-- LANGUAGE sql over per-account tables, no forced generic plan, no NOTIFY),
-- so Citus can run the call on the account's worker
-- (create_distributed_function(..., distribution_arg_name => 'p_account_id')).
-- The merchant rules are the exception: they read the merchant's rows of
-- other accounts (exact on one node; see the document).
-- An account with no transaction: its alerts and state are removed, 0.
-- Errors: PF001 (invalid_input) for a NULL p_account_id (column account_id).
CREATE OR REPLACE FUNCTION score_account(p_account_id bigint, p_from timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
SET jit = off
AS $$
DECLARE
    v_from timestamptz := coalesce(p_from, '-infinity'::timestamptz);
    v_new bigint;
    v_undecided bigint[];
BEGIN
    IF p_account_id IS NULL THEN
        RAISE EXCEPTION 'account_id is required' USING ERRCODE = 'PF001', COLUMN = 'account_id';
    END IF;
    -- The running totals, from the account's rows (one index range).
    WITH totals AS (
        SELECT count(*) AS transaction_count, coalesce(sum(t.amount), 0) AS amount_sum
        FROM transactions AS t
        WHERE t.account_id = p_account_id
    )
    INSERT INTO account_states AS a (account_id, transaction_count, amount_sum)
    SELECT p_account_id, o.transaction_count, o.amount_sum
    FROM totals AS o
    WHERE o.transaction_count > 0
    ON CONFLICT ON CONSTRAINT account_states_pkey DO UPDATE
    SET transaction_count = excluded.transaction_count,
        amount_sum = excluded.amount_sum
    WHERE (a.transaction_count, a.amount_sum)
          IS DISTINCT FROM (excluded.transaction_count, excluded.amount_sum);
    IF NOT FOUND THEN
        DELETE FROM account_states AS a
        WHERE a.account_id = p_account_id
          AND NOT EXISTS (SELECT FROM transactions AS t WHERE t.account_id = p_account_id);
    END IF;
    v_new := _rescore_account(p_account_id, v_from, -1);
    -- (Read first: a call inside a statement over transactions would be
    -- pushed to the shard with it, and its own reads are then refused on Citus.)
    v_undecided := ARRAY(SELECT t.transaction_id FROM transactions AS t
                         WHERE t.account_id = p_account_id AND t.ts >= v_from
                           AND NOT EXISTS (SELECT FROM decisions AS d
                                           WHERE d.account_id = p_account_id
                                             AND d.transaction_id = t.transaction_id)
                         ORDER BY t.transaction_id);
    PERFORM _record_account_decisions(p_account_id, v_undecided);
    RETURN v_new;
END;
$$;

COMMENT ON FUNCTION score_account(bigint, timestamptz) IS
    'Per-account scoring: re-evaluates one account''s transactions from p_from (NULL: all) by the live rules, makes its alerts equal the rule code''s result, sets its account_states row, decides its undecided transactions; returns the number of new alerts. PF001 for a NULL account.';

REVOKE ALL ON FUNCTION score_account(bigint, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION score_account(bigint, timestamptz) TO pgfraud_app;
