-- store_account_transactions(p_account_id bigint, p_transactions jsonb)
--     -> TABLE (row_number bigint, transaction_id bigint, status text, alerts jsonb,
--               decision jsonb)
--
-- The per-account store (issue 19; docs/scoring-per-account.md): stores a
-- JSON array of ONE account's transactions all-or-nothing and scores them by
-- the per-account path (score_account's code: _rescore_account from the
-- earliest stored row's position, so a late arrival re-scores the account's
-- later rows; account_states moved by the stored rows; one decision per
-- stored row, from the alerts just written). Each element is as for
-- store_transactions: {"account_id": int (optional; when given it must be
-- p_account_id), "transaction_id": int, "timestamp": ISO 8601 text (no
-- offset: UTC) , "amount": decimal text or number (2 places at most),
-- "merchant_id": int (optional)}. Returns one row per element (row_number =
-- its 0-based index), status 'stored' or 'duplicate' (already stored
-- unchanged for this account; within the input the first wins), its alerts
-- [{alert_id, rule_id, observed, threshold, reason}] and its decision
-- (_decision_json), as store_transactions.
-- The statement trigger does not score these rows (pgfraud.score_on_arrival
-- is 'off' for the insert only); every statement is filtered on
-- account_id = p_account_id, so Citus can delegate the call to the
-- account's worker (create_distributed_function(..., distribution_arg_name
-- => 'p_account_id')). No NOTIFY: the live feed is not woken by this path
-- (docs/scoring-per-account.md).
-- Errors: PF001 (invalid_input) when p_account_id is NULL (column
-- account_id), p_transactions is not an array of objects, or an element's
-- account_id is not p_account_id (column account_id, DETAIL {"row": i});
-- PF003 (transaction_conflict) when a transaction_id is stored with other
-- content or under another account, or appears twice in the input with
-- different content (DETAIL {"row", "transaction_id"}); check_violation
-- (23514) for a value the transactions table refuses. Nothing is stored then.
CREATE OR REPLACE FUNCTION store_account_transactions(p_account_id bigint, p_transactions jsonb)
RETURNS TABLE (row_number bigint, transaction_id bigint, status text, alerts jsonb,
               decision jsonb)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
-- The wire contract: a timestamp without an offset is UTC, not the caller's zone.
SET timezone = 'UTC'
SET jit = off
AS $$
DECLARE
    v_bad record;
    v_stored_ids bigint[];
    v_from record;
    v_duplicate_ids bigint[];
    v_held jsonb;
    v_ids bigint[];
    v_alerts jsonb;
    v_decisions jsonb;
    v_decision_rows jsonb;
BEGIN
    IF p_account_id IS NULL THEN
        RAISE EXCEPTION 'account_id is required' USING ERRCODE = 'PF001', COLUMN = 'account_id';
    END IF;
    IF jsonb_typeof(p_transactions) IS DISTINCT FROM 'array'
       OR EXISTS (SELECT FROM jsonb_array_elements(p_transactions) AS e(value)
                  WHERE jsonb_typeof(e.value) <> 'object') THEN
        RAISE EXCEPTION 'expected a JSON array of transaction objects' USING ERRCODE = 'PF001';
    END IF;
    SELECT e.ordinality - 1 AS row_number INTO v_bad
    FROM jsonb_array_elements(p_transactions) WITH ORDINALITY AS e(value, ordinality)
    WHERE e.value ? 'account_id'
      AND (e.value -> 'account_id') IS DISTINCT FROM to_jsonb(p_account_id)
    ORDER BY e.ordinality
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'account_id of row % is not the account %', v_bad.row_number, p_account_id
            USING ERRCODE = 'PF001', COLUMN = 'account_id',
                  DETAIL = json_build_object('row', v_bad.row_number)::text,
                  HINT = 'store_account_transactions takes one account''s transactions';
    END IF;

    CREATE TEMPORARY TABLE IF NOT EXISTS account_batch (
        row_number bigint NOT NULL,
        transaction_id bigint,
        ts timestamptz,
        amount numeric,
        merchant_id bigint,
        status text
    ) ON COMMIT DROP;
    TRUNCATE pg_temp.account_batch;
    INSERT INTO pg_temp.account_batch (row_number, transaction_id, ts, amount, merchant_id)
    SELECT e.ordinality - 1, r.transaction_id, r."timestamp",
           -- Scale 2 when that loses nothing; otherwise the CHECK refuses it.
           CASE WHEN r.amount = round(r.amount, 2) THEN round(r.amount, 2) ELSE r.amount END,
           r.merchant_id
    FROM jsonb_array_elements(p_transactions) WITH ORDINALITY AS e(value, ordinality)
    CROSS JOIN LATERAL jsonb_to_record(e.value)
        AS r(transaction_id bigint, "timestamp" timestamptz, amount numeric, merchant_id bigint);

    -- Stored without the statement trigger's set-based scoring: scored below.
    PERFORM set_config('pgfraud.score_on_arrival', 'off', true);
    WITH inserted AS (
        INSERT INTO transactions AS t (transaction_id, account_id, ts, amount, merchant_id)
        SELECT b.transaction_id, p_account_id, b.ts, b.amount, b.merchant_id
        FROM pg_temp.account_batch AS b
        ORDER BY b.row_number
        ON CONFLICT ON CONSTRAINT transactions_pkey DO NOTHING
        RETURNING t.transaction_id
    )
    SELECT array_agg(i.transaction_id) INTO v_stored_ids FROM inserted AS i;
    PERFORM set_config('pgfraud.score_on_arrival', 'on', true);

    -- Each row: stored (the first row of its id that was inserted), else a
    -- duplicate when the account holds it with the same content, else a
    -- conflict (other content, or another account's id: not in this account).
    UPDATE pg_temp.account_batch AS b
    SET status = CASE WHEN b.transaction_id = ANY (v_stored_ids)
                           AND b.row_number = (SELECT min(c.row_number) FROM pg_temp.account_batch AS c
                                               WHERE c.transaction_id = b.transaction_id)
                      THEN 'stored' ELSE 'duplicate' END;
    -- The account's stored rows of those ids, read into this session first:
    -- Citus plans no join between a distributed table and a temporary one.
    v_duplicate_ids := ARRAY(SELECT b.transaction_id FROM pg_temp.account_batch AS b
                             WHERE b.status = 'duplicate');
    SELECT coalesce(jsonb_object_agg(t.transaction_id::text,
                                     jsonb_build_array(t.ts, t.amount, t.merchant_id)), '{}')
    INTO v_held
    FROM transactions AS t
    WHERE t.account_id = p_account_id
      AND t.transaction_id = ANY (v_duplicate_ids);
    SELECT b.row_number, b.transaction_id INTO v_bad
    FROM pg_temp.account_batch AS b
    WHERE b.status = 'duplicate'
      AND (v_held -> b.transaction_id::text)
          IS DISTINCT FROM jsonb_build_array(b.ts, b.amount, b.merchant_id)
    ORDER BY b.row_number
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'transaction_id % is already stored with other content', v_bad.transaction_id
            USING ERRCODE = 'PF003', COLUMN = 'transaction_id',
                  DETAIL = json_build_object('row', v_bad.row_number,
                                             'transaction_id', v_bad.transaction_id)::text,
                  HINT = 'a transaction id names one transaction; send it again only unchanged';
    END IF;

    IF v_stored_ids IS NOT NULL THEN
        SELECT b.ts, b.transaction_id INTO v_from
        FROM pg_temp.account_batch AS b
        WHERE b.status = 'stored'
        ORDER BY b.ts, b.transaction_id
        LIMIT 1;
        INSERT INTO account_states AS a (account_id, transaction_count, amount_sum)
        SELECT p_account_id, count(*), sum(b.amount)
        FROM pg_temp.account_batch AS b
        WHERE b.status = 'stored'
        ON CONFLICT ON CONSTRAINT account_states_pkey DO UPDATE
        SET transaction_count = a.transaction_count + excluded.transaction_count,
            amount_sum = a.amount_sum + excluded.amount_sum;
        PERFORM _rescore_account(p_account_id, v_from.ts, v_from.transaction_id);
        PERFORM _record_account_decisions(
            p_account_id, ARRAY(SELECT s.id FROM unnest(v_stored_ids) AS s(id) ORDER BY s.id));
    END IF;

    -- The alerts and decisions of the batch's ids, read into this session
    -- first (no join of a temporary table with a distributed one on Citus).
    v_ids := ARRAY(SELECT b.transaction_id FROM pg_temp.account_batch AS b);
    SELECT coalesce(jsonb_object_agg(a.transaction_id::text, a.alerts), '{}') INTO v_alerts
    FROM (SELECT al.transaction_id,
                 jsonb_agg(jsonb_build_object(
                     'alert_id', al.alert_id,
                     'rule_id', al.rule_id,
                     'rule_version', al.rule_version,
                     'observed', al.observed::text,
                     'threshold', al.threshold::text,
                     'reason', al.reason) ORDER BY al.rule_id) AS alerts
          FROM alerts AS al
          WHERE al.account_id = p_account_id
            AND al.transaction_id = ANY (v_ids)
          GROUP BY al.transaction_id) AS a;
    -- (_decision_json reads decision_policies: called outside the read of
    -- decisions, which Citus runs on a shard.)
    SELECT jsonb_agg(to_jsonb(d)) INTO v_decision_rows
    FROM decisions AS d
    WHERE d.account_id = p_account_id
      AND d.transaction_id = ANY (v_ids);
    SELECT coalesce(jsonb_object_agg(d.transaction_id::text, _decision_json(d)), '{}')
    INTO v_decisions
    FROM jsonb_populate_recordset(NULL::decisions, v_decision_rows) AS d;
    RETURN QUERY
        SELECT b.row_number, b.transaction_id, b.status,
               coalesce(v_alerts -> b.transaction_id::text, '[]'::jsonb),
               v_decisions -> b.transaction_id::text
        FROM pg_temp.account_batch AS b
        ORDER BY b.row_number;
END;
$$;

COMMENT ON FUNCTION store_account_transactions(bigint, jsonb) IS
    'Stores a JSON array of one account''s transactions all-or-nothing and scores them per account (alerts, account_states, decisions); status stored/duplicate, alerts and decision per element; PF001 for another account_id, PF003 on conflict.';

REVOKE ALL ON FUNCTION store_account_transactions(bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION store_account_transactions(bigint, jsonb) TO pgfraud_app;
