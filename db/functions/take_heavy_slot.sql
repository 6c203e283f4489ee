-- take_heavy_slot(p_slots integer) -> integer
--
-- Take one of p_slots slots for heavy work (a backtest, a rule change) for
-- the rest of the caller's database transaction: the first free one of the
-- transaction-level advisory locks (72315470, 0) .. (72315470, p_slots - 1),
-- taken without waiting. Returns the slot's number, or NULL when all are
-- held by other transactions (the service then answers 429). The locks are
-- the database's, so the bound holds across every worker process and server
-- using it; they end with the transaction (commit, rollback or a lost
-- connection), so a slot is never leaked. The keys are apart from the
-- scoring's own advisory locks (7231546390112208 and (72315463, bucket)):
-- taking a slot never waits on, or blocks, a store.
-- Raises PF001 (invalid_input) when p_slots is not 1 .. 1000.
CREATE OR REPLACE FUNCTION take_heavy_slot(p_slots integer)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_slot integer;
BEGIN
    IF p_slots IS NULL OR p_slots NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'the number of heavy slots must be from 1 to 1000, not %', p_slots
            USING ERRCODE = 'PF001', HINT = 'set PGFRAUD_MAX_HEAVY to 1 .. 1000';
    END IF;
    FOR v_slot IN 0 .. p_slots - 1 LOOP
        IF pg_try_advisory_xact_lock(72315470, v_slot) THEN
            RETURN v_slot;
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION take_heavy_slot(integer) IS
    'Take one of p_slots heavy-work slots (advisory locks (72315470, 0 .. p_slots - 1)) '
    'for the rest of the transaction without waiting; its number, or NULL when all are held.';

REVOKE ALL ON FUNCTION take_heavy_slot(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION take_heavy_slot(integer) TO pgfraud_app, pgfraud_readonly;
