-- get_decision(p_transaction_id bigint) -> jsonb
--
-- The decision made when the transaction was stored, as answered
-- (_decision_json: outcome, score, score_outcome, overruled, rules, lists,
-- policy, rule_set_id, decided_at).
-- Errors: PF005 (transaction_not_found, COLUMN transaction_id) when no
-- decision exists for it (not stored, or stored before decisions existed).
CREATE OR REPLACE FUNCTION get_decision(p_transaction_id bigint)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_result jsonb;
BEGIN
    -- The row first, then its JSON (on Citus: on the coordinator, see get_decisions).
    WITH found AS MATERIALIZED (
        SELECT d.*
        FROM decisions AS d
        WHERE d.transaction_id = p_transaction_id
        -- The latest: an id deleted and stored again under another account has two.
        ORDER BY d.decided_at DESC
        LIMIT 1
    )
    SELECT _decision_json(ROW(f.*)::decisions) INTO v_result
    FROM found AS f;
    IF v_result IS NULL THEN
        RAISE EXCEPTION 'no decision for transaction %', p_transaction_id
            USING ERRCODE = 'PF005', COLUMN = 'transaction_id';
    END IF;
    RETURN v_result;
END;
$$;

COMMENT ON FUNCTION get_decision(bigint) IS
    'The decision made when a transaction was stored (as answered); PF005 when there is none.';

REVOKE ALL ON FUNCTION get_decision(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_decision(bigint) TO pgfraud_app, pgfraud_readonly;
