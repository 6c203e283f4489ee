-- create_staging_table() -> void
--
-- Makes (or empties) this session's temporary table staged_transactions:
-- row_number (the row's position in the caller's input: JSON array index or
-- CSV line), then the columns and CHECK constraints of `transactions`, without
-- its unique key. Callers fill it (INSERT or COPY) and call
-- store_staged_transactions() in the same database transaction; it is emptied
-- at commit. Raises nothing.
CREATE OR REPLACE FUNCTION create_staging_table()
RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $$
BEGIN
    IF to_regclass('pg_temp.staged_transactions') IS NULL THEN
        CREATE TEMPORARY TABLE staged_transactions (
            row_number bigint NOT NULL,
            LIKE transactions INCLUDING CONSTRAINTS
        ) ON COMMIT DELETE ROWS;
    ELSE
        -- Empty already unless called twice in one database transaction; DELETE
        -- (not TRUNCATE) keeps this per-request call free of catalog writes.
        DELETE FROM pg_temp.staged_transactions;
    END IF;
END;
$$;

COMMENT ON FUNCTION create_staging_table() IS
    'Creates or empties the session''s temporary staged_transactions table (row_number + the transactions columns).';

REVOKE ALL ON FUNCTION create_staging_table() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION create_staging_table() TO pgfraud_app;
