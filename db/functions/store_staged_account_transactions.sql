-- store_staged_account_transactions() -> TABLE (stored bigint, duplicate bigint)
--
-- store_staged_transactions for the Citus layout (issue 19;
-- docs/scaling.md), where a transaction id is unique per account: moves the
-- rows of pg_temp.staged_transactions into `transactions`, all-or-nothing
-- and idempotently, keyed by (account_id, transaction_id): a row already
-- stored with the same time, amount and merchant is a duplicate (within the
-- input the first row wins); the others are stored, amounts with 2 decimal
-- places. The rows are stored raw: on Citus the scoring trigger is off and
-- the caller scores the touched accounts afterwards (pgfraud.db.score_pending).
-- Run on the coordinator (it joins the session's staging table with
-- transactions, which Citus plans there, not in a delegated call).
-- Returns one row: how many were stored and how many were duplicates.
-- Errors: PF003 (transaction_conflict) when an account's transaction_id is
-- already stored with other content, or appears twice in the input with
-- different content; DETAIL is JSON {"row": ..., "transaction_id": ...}.
-- Nothing is stored then.
CREATE OR REPLACE FUNCTION store_staged_account_transactions()
RETURNS TABLE (stored bigint, duplicate bigint)
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_conflict record;
    v_stored bigint;
    v_total bigint;
BEGIN
    SELECT s.transaction_id, min(s.row_number) AS first_row, max(s.row_number) AS last_row
    INTO v_conflict
    FROM pg_temp.staged_transactions AS s
    GROUP BY s.account_id, s.transaction_id
    HAVING count(DISTINCT (s.ts, s.amount, s.merchant_id)) > 1
    ORDER BY min(s.row_number)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'transaction_id % appears twice in the input with different content',
                v_conflict.transaction_id
            USING ERRCODE = 'PF003', COLUMN = 'transaction_id',
                  DETAIL = json_build_object('row', v_conflict.last_row,
                                             'transaction_id', v_conflict.transaction_id)::text,
                  HINT = format('rows %s and %s differ', v_conflict.first_row, v_conflict.last_row);
    END IF;

    -- (Counted from RETURNING: Citus's ROW_COUNT of an INSERT ... SELECT
    -- through the coordinator counts the rows sent, conflicts included.)
    WITH inserted AS (
        INSERT INTO transactions AS t (transaction_id, account_id, ts, amount, merchant_id)
        SELECT DISTINCT ON (s.account_id, s.transaction_id) s.transaction_id, s.account_id, s.ts,
               round(s.amount, 2), s.merchant_id
        FROM pg_temp.staged_transactions AS s
        ORDER BY s.account_id, s.transaction_id, s.row_number
        ON CONFLICT ON CONSTRAINT transactions_pkey DO NOTHING
        RETURNING t.transaction_id
    )
    SELECT count(*) INTO v_stored FROM inserted;
    SELECT count(*) INTO v_total FROM pg_temp.staged_transactions;

    SELECT s.row_number, s.transaction_id
    INTO v_conflict
    FROM pg_temp.staged_transactions AS s
    JOIN transactions AS t
      ON t.account_id = s.account_id AND t.transaction_id = s.transaction_id
    WHERE (t.ts, t.amount, t.merchant_id) IS DISTINCT FROM (s.ts, s.amount, s.merchant_id)
    ORDER BY s.row_number
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'transaction_id % is already stored with other content', v_conflict.transaction_id
            USING ERRCODE = 'PF003', COLUMN = 'transaction_id',
                  DETAIL = json_build_object('row', v_conflict.row_number,
                                             'transaction_id', v_conflict.transaction_id)::text,
                  HINT = 'a transaction id names one transaction; send it again only unchanged';
    END IF;
    RETURN QUERY SELECT v_stored, v_total - v_stored;
END;
$$;

COMMENT ON FUNCTION store_staged_account_transactions() IS
    'Citus layout: stores the session''s staged_transactions raw, all-or-nothing, keyed by (account_id, transaction_id); one row (stored, duplicate); PF003 on a conflicting id.';

REVOKE ALL ON FUNCTION store_staged_account_transactions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION store_staged_account_transactions() TO pgfraud_app;
