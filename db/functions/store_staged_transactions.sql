-- store_staged_transactions() -> TABLE (row_number bigint, transaction_id bigint, status text)
--
-- Moves the rows of pg_temp.staged_transactions into `transactions`,
-- all-or-nothing and idempotently: a transaction already stored with the same
-- account, time and amount is a 'duplicate' (stored once; within one input the
-- first row wins); otherwise it is 'stored', its amount with 2 decimal
-- places. One row per staged row, in row_number order.
-- Errors: PF003 (transaction_conflict) when a transaction_id is already stored
-- with other content, or appears twice in the input with different content;
-- DETAIL is JSON {"row": ..., "transaction_id": ...}. Nothing is stored then.
-- Concurrent writers of the same id are safe: the conflict check runs after
-- the insert, which waits for the other writer to finish.
CREATE OR REPLACE FUNCTION store_staged_transactions()
RETURNS TABLE (row_number bigint, transaction_id bigint, status text)
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_conflict record;
BEGIN
    SELECT s.transaction_id, min(s.row_number) AS first_row, max(s.row_number) AS last_row
    INTO v_conflict
    FROM pg_temp.staged_transactions AS s
    GROUP BY s.transaction_id
    HAVING count(DISTINCT (s.account_id, s.ts, s.amount)) > 1
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

    -- The rows are inserted and answered in one statement (no array of the
    -- inserted ids, so a load of millions of rows costs no memory for them);
    -- the conflict check below still sees them, and its error discards the
    -- answer with everything else.
    RETURN QUERY
        WITH inserted AS (
            INSERT INTO transactions AS t (transaction_id, account_id, ts, amount)
            -- Amounts are stored with exactly 2 decimal places (13 -> 13.00); the
            -- staging table's CHECK already refused more places.
            SELECT DISTINCT ON (s.transaction_id) s.transaction_id, s.account_id, s.ts,
                   round(s.amount, 2)
            FROM pg_temp.staged_transactions AS s
            ORDER BY s.transaction_id, s.row_number
            ON CONFLICT ON CONSTRAINT transactions_pkey DO NOTHING
            RETURNING t.transaction_id
        )
        SELECT s.row_number, s.transaction_id,
               CASE WHEN i.transaction_id IS NOT NULL
                         AND s.row_number = min(s.row_number) OVER (PARTITION BY s.transaction_id)
                    THEN 'stored' ELSE 'duplicate' END
        FROM pg_temp.staged_transactions AS s
        LEFT JOIN inserted AS i ON i.transaction_id = s.transaction_id
        ORDER BY s.row_number;

    SELECT s.row_number, s.transaction_id
    INTO v_conflict
    FROM pg_temp.staged_transactions AS s
    JOIN transactions AS t ON t.transaction_id = s.transaction_id
    WHERE (t.account_id, t.ts, t.amount) IS DISTINCT FROM (s.account_id, s.ts, s.amount)
    ORDER BY s.row_number
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'transaction_id % is already stored with other content', v_conflict.transaction_id
            USING ERRCODE = 'PF003', COLUMN = 'transaction_id',
                  DETAIL = json_build_object('row', v_conflict.row_number,
                                             'transaction_id', v_conflict.transaction_id)::text,
                  HINT = 'a transaction id names one transaction; send it again only unchanged';
    END IF;

END;
$$;

COMMENT ON FUNCTION store_staged_transactions() IS
    'Stores the session''s staged_transactions all-or-nothing: status stored/duplicate per row; PF003 on a conflicting transaction_id.';

REVOKE ALL ON FUNCTION store_staged_transactions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION store_staged_transactions() TO pgfraud_app;
