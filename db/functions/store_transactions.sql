-- store_transactions(p_transactions jsonb)
--     -> TABLE (row_number bigint, transaction_id bigint, status text, alerts jsonb,
--               decision jsonb)
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
-- {"alert_id", "rule_id", "rule_version", "observed", "threshold", "reason"}
-- (decimals as strings; rule_version: the version of the rule that made the
-- alert, as GET /alerts names it), [] when no rule fired; and its decision (issue 17), made in the
-- same database transaction (for a duplicate, the one made when it was
-- first stored): {outcome, score, score_outcome, overruled, rules:
-- [{rule_id, score, observed, threshold, reason}], lists: [...], policy,
-- ...} (_decision_json), null for a transaction stored before decisions
-- existed. Same rules and errors as
-- store_staged_transactions: PF003 on a conflicting id; check_violation
-- (23514) on a value the transactions table refuses; PF001 (invalid_input)
-- when p_transactions is not an array of objects.
CREATE OR REPLACE FUNCTION store_transactions(p_transactions jsonb)
RETURNS TABLE (row_number bigint, transaction_id bigint, status text, alerts jsonb,
               decision jsonb)
LANGUAGE plpgsql
VOLATILE
-- The wire contract: a timestamp without an offset is UTC, not the caller's zone.
SET timezone = 'UTC'
AS $$
DECLARE
    v_row_numbers bigint[];
    v_transaction_ids bigint[];
    v_statuses text[];
    v_one record;
    v_stored bigint;
BEGIN
    IF jsonb_typeof(p_transactions) IS DISTINCT FROM 'array'
       OR EXISTS (SELECT FROM jsonb_array_elements(p_transactions) AS e(value)
                  WHERE jsonb_typeof(e.value) <> 'object') THEN
        RAISE EXCEPTION 'expected a JSON array of transaction objects' USING ERRCODE = 'PF001';
    END IF;
    IF jsonb_array_length(p_transactions) = 1 THEN
        -- One transaction (a single POST): inserted directly, without the
        -- staging table, whose commit-time emptying cost 15% of such a
        -- store's server time (perf, README Performance). Same rules: the
        -- table's constraints, stored/duplicate, PF003 on other content.
        SELECT r.transaction_id, r.account_id, r."timestamp" AS ts,
               CASE WHEN r.amount = round(r.amount, 2) THEN round(r.amount, 2) ELSE r.amount END
                   AS amount,
               r.merchant_id
        INTO v_one
        FROM jsonb_to_record(p_transactions -> 0)
            AS r(transaction_id bigint, account_id bigint, "timestamp" timestamptz,
                 amount numeric, merchant_id bigint);
        INSERT INTO transactions AS t (transaction_id, account_id, ts, amount, merchant_id)
        VALUES (v_one.transaction_id, v_one.account_id, v_one.ts, v_one.amount, v_one.merchant_id)
        ON CONFLICT ON CONSTRAINT transactions_pkey DO NOTHING
        RETURNING t.transaction_id INTO v_stored;
        IF v_stored IS NULL AND EXISTS (
            SELECT FROM transactions AS t
            WHERE t.transaction_id = v_one.transaction_id
              AND (t.account_id, t.ts, t.amount, t.merchant_id)
                  IS DISTINCT FROM (v_one.account_id, v_one.ts, v_one.amount, v_one.merchant_id)
        ) THEN
            RAISE EXCEPTION 'transaction_id % is already stored with other content',
                    v_one.transaction_id
                USING ERRCODE = 'PF003', COLUMN = 'transaction_id',
                      DETAIL = json_build_object('row', 0,
                                                 'transaction_id', v_one.transaction_id)::text,
                      HINT = 'a transaction id names one transaction; send it again only unchanged';
        END IF;
        v_row_numbers := ARRAY[0];
        v_transaction_ids := ARRAY[v_one.transaction_id];
        v_statuses := ARRAY[CASE WHEN v_stored IS NULL THEN 'duplicate' ELSE 'stored' END];
    ELSE
        PERFORM create_staging_table();
        INSERT INTO pg_temp.staged_transactions (row_number, transaction_id, account_id, ts,
                                                 amount, merchant_id)
        SELECT e.ordinality - 1, r.transaction_id, r.account_id, r."timestamp",
               -- Scale 2 when that loses nothing; otherwise the CHECK refuses it.
               CASE WHEN r.amount = round(r.amount, 2) THEN round(r.amount, 2) ELSE r.amount END,
               r.merchant_id
        FROM jsonb_array_elements(p_transactions) WITH ORDINALITY AS e(value, ordinality)
        CROSS JOIN LATERAL jsonb_to_record(e.value)
            AS r(transaction_id bigint, account_id bigint, "timestamp" timestamptz,
                 amount numeric, merchant_id bigint);
        -- Stored first (the trigger scores in that statement), read back after:
        -- a later statement sees the alerts the store raised.
        SELECT array_agg(s.row_number ORDER BY s.row_number),
               array_agg(s.transaction_id ORDER BY s.row_number),
               array_agg(s.status ORDER BY s.row_number)
        INTO v_row_numbers, v_transaction_ids, v_statuses
        FROM store_staged_transactions() AS s;
    END IF;
    RETURN QUERY
        SELECT r.row_number, r.transaction_id, r.status,
               coalesce((SELECT jsonb_agg(jsonb_build_object(
                                    'alert_id', al.alert_id,
                                    'rule_id', al.rule_id,
                                    'rule_version', al.rule_version,
                                    'observed', al.observed::text,
                                    'threshold', al.threshold::text,
                                    'reason', al.reason) ORDER BY al.rule_id)
                         FROM alerts AS al
                         WHERE al.transaction_id = r.transaction_id), '[]'::jsonb),
               -- The latest: a transaction id deleted and stored again under
               -- another account has a decision for each (decisions are kept).
               (SELECT _decision_json(d) FROM decisions AS d
                WHERE d.transaction_id = r.transaction_id
                ORDER BY d.decided_at DESC
                LIMIT 1)
        FROM unnest(v_row_numbers, v_transaction_ids, v_statuses)
            AS r(row_number, transaction_id, status)
        ORDER BY r.row_number;
END;
$$;

COMMENT ON FUNCTION store_transactions(jsonb) IS
    'Stores a JSON array of {account_id, transaction_id, timestamp, amount, merchant_id (optional)} all-or-nothing; status stored/duplicate, the alerts raised and the decision per element; PF003 on conflict.';

REVOKE ALL ON FUNCTION store_transactions(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION store_transactions(jsonb) TO pgfraud_app;
