-- store_transactions(p_transactions jsonb)
--     -> TABLE (row_number bigint, transaction_id bigint, status text, alerts jsonb)
--
-- Stores a JSON array of transactions all-or-nothing; each element is
-- {"account_id": int, "transaction_id": int, "timestamp": ISO 8601 text
-- (with an offset or Z; without one it is UTC, whatever the session's
-- TimeZone: the function runs with TimeZone UTC), "amount": decimal text or
-- number, stored with 2 decimal places (13 -> 13.00, 12.340 -> 12.34; more
-- places than 2 that are not zeros are refused, never rounded)}. Returns one
-- row per element (row_number = its 0-based array index) with status 'stored'
-- or 'duplicate' (already stored unchanged) and the verdict: the transaction's
-- alerts, scored in this same database transaction, as a JSON array of
-- {"alert_id", "rule_id", "observed", "threshold", "reason"} (decimals as
-- strings), [] when no rule fired. Same rules and errors as
-- store_staged_transactions: PF003 on a conflicting id; check_violation
-- (23514) on a value the transactions table refuses; PF001 (invalid_input)
-- when p_transactions is not an array of objects.
CREATE OR REPLACE FUNCTION store_transactions(p_transactions jsonb)
RETURNS TABLE (row_number bigint, transaction_id bigint, status text, alerts jsonb)
LANGUAGE plpgsql
VOLATILE
-- The wire contract: a timestamp without an offset is UTC, not the caller's zone.
SET timezone = 'UTC'
AS $$
DECLARE
    v_row_numbers bigint[];
    v_transaction_ids bigint[];
    v_statuses text[];
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
    -- Stored first (the trigger scores in that statement), read back after:
    -- a later statement sees the alerts the store raised.
    SELECT array_agg(s.row_number ORDER BY s.row_number),
           array_agg(s.transaction_id ORDER BY s.row_number),
           array_agg(s.status ORDER BY s.row_number)
    INTO v_row_numbers, v_transaction_ids, v_statuses
    FROM store_staged_transactions() AS s;
    RETURN QUERY
        SELECT r.row_number, r.transaction_id, r.status,
               coalesce((SELECT jsonb_agg(jsonb_build_object(
                                    'alert_id', al.alert_id,
                                    'rule_id', al.rule_id,
                                    'observed', al.observed::text,
                                    'threshold', al.threshold::text,
                                    'reason', al.reason) ORDER BY al.rule_id)
                         FROM alerts AS al
                         WHERE al.transaction_id = r.transaction_id), '[]'::jsonb)
        FROM unnest(v_row_numbers, v_transaction_ids, v_statuses)
            AS r(row_number, transaction_id, status)
        ORDER BY r.row_number;
END;
$$;

COMMENT ON FUNCTION store_transactions(jsonb) IS
    'Stores a JSON array of {account_id, transaction_id, timestamp, amount} all-or-nothing; status stored/duplicate and the alerts raised per element; PF003 on conflict.';

REVOKE ALL ON FUNCTION store_transactions(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION store_transactions(jsonb) TO pgfraud_app;
