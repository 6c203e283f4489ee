-- remove_list_entry(p_list_name text, p_value bigint, p_actor text DEFAULT NULL) -> jsonb
--
-- Takes a value off a list from now: its entry in force gets removed_at
-- (kept, so earlier decisions can still be explained). Takes the exclusive
-- side of the rule-change lock (see set_decision_policy). Returns the
-- entry {entry_id, list_name, value, reason, added_by, added_at,
-- expires_at, removed_by, removed_at}. Runs as the owner (DELETE
-- /lists/<name>/entries/<value> with the token).
-- Errors: PF006 (list_not_found) when the list does not exist (COLUMN
-- list_name) or has no entry in force for the value (COLUMN value).
CREATE OR REPLACE FUNCTION remove_list_entry(p_list_name text, p_value bigint, p_actor text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_actor text := _actor(p_actor);
    v_at timestamptz;
    v_entry list_entries;
BEGIN
    IF NOT EXISTS (SELECT FROM lists AS l WHERE l.list_name = p_list_name) THEN
        RAISE EXCEPTION 'no list named %', coalesce(p_list_name, 'null')
            USING ERRCODE = 'PF006', COLUMN = 'list_name';
    END IF;
    PERFORM pg_advisory_xact_lock(7231546390112208);
    v_at := clock_timestamp();
    UPDATE list_entries AS e
    SET removed_at = v_at, removed_by = v_actor
    WHERE e.list_name = p_list_name AND e.value = p_value AND e.removed_at IS NULL
      AND (e.expires_at IS NULL OR e.expires_at > v_at)
    RETURNING e.* INTO v_entry;
    IF v_entry.entry_id IS NULL THEN
        RAISE EXCEPTION '% is not on list %', p_value, p_list_name
            USING ERRCODE = 'PF006', COLUMN = 'value';
    END IF;
    RETURN jsonb_build_object(
        'entry_id', v_entry.entry_id, 'list_name', v_entry.list_name, 'value', v_entry.value,
        'reason', v_entry.reason, 'added_by', v_entry.added_by,
        'added_at', to_char(v_entry.added_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'expires_at', to_char(v_entry.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'removed_by', v_entry.removed_by,
        'removed_at', to_char(v_entry.removed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
END;
$$;

COMMENT ON FUNCTION remove_list_entry(text, bigint, text) IS
    'Takes a value off a list from now (the entry is kept with removed_at); PF006 when the list or the entry in force does not exist.';

REVOKE ALL ON FUNCTION remove_list_entry(text, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION remove_list_entry(text, bigint, text) TO pgfraud_app;
