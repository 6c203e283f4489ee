-- take_rule_change_slot(p_slots integer) -> integer
--
-- Take one of p_slots slots for an owner's change that takes the exclusive
-- rule-change lock (a rule change, a shadow started, dropped or promoted, a
-- decision policy change, a list entry added or removed) for the rest of
-- the caller's database transaction: the first free one of the
-- transaction-level advisory locks (72315471, 0) .. (72315471, p_slots - 1),
-- taken without waiting. Returns the slot's number, or NULL when all are
-- held by other transactions (the service then answers 429). A budget apart
-- from the backtests' (take_heavy_slot, (72315470, n)): analysts' backtests
-- never make an owner's change wait or fail, and a burst of owner changes
-- queues at most p_slots on the rule-change lock, so stores (which need its
-- shared side) are not starved. The locks end with the transaction, so a
-- slot is never leaked; taking one never waits on, or blocks, a store.
-- Raises PF001 (invalid_input) when p_slots is not 1 .. 1000.
CREATE OR REPLACE FUNCTION take_rule_change_slot(p_slots integer)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_slot integer;
BEGIN
    IF p_slots IS NULL OR p_slots NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'the number of rule-change slots must be from 1 to 1000, not %', p_slots
            USING ERRCODE = 'PF001', HINT = 'set PGFRAUD_MAX_RULE_CHANGES to 1 .. 1000';
    END IF;
    FOR v_slot IN 0 .. p_slots - 1 LOOP
        IF pg_try_advisory_xact_lock(72315471, v_slot) THEN
            RETURN v_slot;
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION take_rule_change_slot(integer) IS
    'Take one of p_slots slots for owners'' changes under the exclusive rule-change lock '
    '(advisory locks (72315471, 0 .. p_slots - 1)) without waiting; its number, or NULL when all are held.';

REVOKE ALL ON FUNCTION take_rule_change_slot(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION take_rule_change_slot(integer) TO pgfraud_app;
