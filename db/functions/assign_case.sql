-- assign_case(p_case_id bigint, p_assignee text) -> jsonb
--
-- Gives a case that is not closed to p_assignee (1..200 characters after
-- trimming; a case already assigned is re-assigned): status 'assigned',
-- assigned_by current_actor(), assigned_at now(). Returns the case
-- (_case_json). Errors: PF001 (invalid_input) naming assignee or actor
-- (over 200 characters); PF040 (case_not_found) naming case_id; PF041
-- (case_conflict) when the case is closed.
CREATE OR REPLACE FUNCTION assign_case(p_case_id bigint, p_assignee text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_before jsonb;
    v_assignee text := btrim(p_assignee);
    v_actor text := current_actor();
    v_case cases;
BEGIN
    IF v_assignee IS NULL OR length(v_assignee) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'assignee must be 1 to 200 characters' USING ERRCODE = 'PF001', COLUMN = 'assignee';
    END IF;
    IF length(v_actor) > 200 THEN
        RAISE EXCEPTION 'actor must be at most 200 characters' USING ERRCODE = 'PF001', COLUMN = 'actor';
    END IF;
    -- Its account first, then the row locked by (account, case): Citus locks
    -- rows only with the distribution column given.
    SELECT c.* INTO v_case FROM cases AS c WHERE c.case_id = p_case_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'there is no case %', p_case_id USING ERRCODE = 'PF040', COLUMN = 'case_id';
    END IF;
    SELECT c.* INTO v_case FROM cases AS c
    WHERE c.account_id = v_case.account_id AND c.case_id = p_case_id FOR UPDATE;
    v_before := to_jsonb(v_case);
    IF v_case.status = 'closed' THEN
        RAISE EXCEPTION 'case % is closed', p_case_id
            USING ERRCODE = 'PF041', COLUMN = 'case_id',
                  HINT = 'new alerts on the account open a new case';
    END IF;
    UPDATE cases AS c
    SET status = 'assigned', assignee = v_assignee, assigned_by = v_actor, assigned_at = now()
    WHERE c.account_id = v_case.account_id AND c.case_id = v_case.case_id
    RETURNING c.* INTO v_case;
    PERFORM _audit_instead('cases', 'cases_audit', 'update', 'case', v_case.case_id::text,
                           v_before, to_jsonb(v_case));
    RETURN _case_json(v_case);
END;
$$;

COMMENT ON FUNCTION assign_case(bigint, text) IS
    'Assigns a case that is not closed to someone (assigned_by current_actor()); PF001 naming assignee, PF040 no such case, PF041 closed.';

REVOKE ALL ON FUNCTION assign_case(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION assign_case(bigint, text) TO pgfraud_app;
