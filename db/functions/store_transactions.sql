-- store_transactions(p_transactions jsonb) -> TABLE (row_number bigint, transaction_id bigint, status text)
--
-- Stores a JSON array of transactions all-or-nothing; each element is
-- {"account_id": int, "transaction_id": int, "timestamp": ISO 8601 text
-- (with an offset or Z; without one it is UTC, whatever the session's
-- TimeZone: the function runs with TimeZone UTC), "amount": decimal text or
-- number, stored with 2 decimal places (13 -> 13.00, 12.340 -> 12.34; more
-- places than 2 that are not zeros are refused, never rounded)}. Returns one
-- row per element (row_number = its 0-based array index) with status 'stored'
-- or 'duplicate' (already stored unchanged). Same rules and errors as
-- store_staged_transactions: PF003 on a conflicting id; check_violation
-- (23514) on a value the transactions table refuses; PF001 (invalid_input)
-- when p_transactions is not an array of objects.
CREATE OR REPLACE FUNCTION store_transactions(p_transactions jsonb)
RETURNS TABLE (row_number bigint, transaction_id bigint, status text)
LANGUAGE plpgsql
VOLATILE
-- The wire contract: a timestamp without an offset is UTC, not the caller's zone.
SET timezone = 'UTC'
AS $$
BEGIN
    IF jsonb_typeof(p_transactions) IS DISTINCT FROM 'array'
       OR EXISTS (SELECT FROM jsonb_array_elements(p_transactions) AS e(value)
                  WHERE jsonb_typeof(e.value) <> 'object') THEN
        RAISE EXCEPTION 'expected a JSON array of transaction objects' USING ERRCODE = 'PF001';
    END IF;
    PERFORM create_staging_table();
    INSERT INTO pg_temp.staged_transactions (row_number, transaction_id, account_id, ts, amount)
    SELECT e.ordinality - 1, r.transaction_id, r.account_id, r."timestamp",
           -- Scale 2 when that loses nothing; otherwise the CHECK refuses it.
           CASE WHEN r.amount = round(r.amount, 2) THEN round(r.amount, 2) ELSE r.amount END
    FROM jsonb_array_elements(p_transactions) WITH ORDINALITY AS e(value, ordinality)
    CROSS JOIN LATERAL jsonb_to_record(e.value)
        AS r(transaction_id bigint, account_id bigint, "timestamp" timestamptz, amount numeric);
    RETURN QUERY SELECT * FROM store_staged_transactions();
END;
$$;

COMMENT ON FUNCTION store_transactions(jsonb) IS
    'Stores a JSON array of {account_id, transaction_id, timestamp, amount} all-or-nothing; status stored/duplicate per element; PF003 on conflict.';

REVOKE ALL ON FUNCTION store_transactions(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION store_transactions(jsonb) TO pgfraud_app;
