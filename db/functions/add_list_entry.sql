-- add_list_entry(p_list_name text, p_value bigint, p_reason text,
--                p_expires_at timestamptz DEFAULT NULL, p_actor text DEFAULT NULL)
--     -> jsonb
--
-- Puts an account or merchant id (p_value, 0..2^63-1) on a list from now
-- until removed or until p_expires_at (NULL: no expiry). An entry already
-- in force for that value is ended now and replaced (new reason or
-- expiry). Entries are never deleted, so what was in force at any time can
-- be read again (decisions name the entries that applied). Takes the
-- exclusive side of the rule-change lock (see set_decision_policy).
-- Returns the entry {entry_id, list_name, subject, kind, value, reason,
-- added_by, added_at, expires_at}. Runs as the owner (POST
-- /lists/<name>/entries with the token).
-- Errors: PF006 (list_not_found, COLUMN list_name) when no list has that
-- name (as get_list and remove_list_entry); PF001 (invalid_input) naming the
-- field: value out of range, reason empty or over 2000 characters, expires_at not
-- in the future.
CREATE OR REPLACE FUNCTION add_list_entry(
    p_list_name text,
    p_value bigint,
    p_reason text,
    p_expires_at timestamptz DEFAULT NULL,
    p_actor text DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_actor text := _actor(p_actor);
    v_at timestamptz;
    v_entry_id bigint;
BEGIN
    IF NOT EXISTS (SELECT FROM lists AS l WHERE l.list_name = p_list_name) THEN
        RAISE EXCEPTION 'no list named %', coalesce(p_list_name, 'null')
            USING ERRCODE = 'PF006', COLUMN = 'list_name', HINT = 'create it first: pgfraud list create';
    END IF;
    IF p_value IS NULL OR p_value < 0 THEN
        RAISE EXCEPTION 'value must be an id from 0 to 9223372036854775807'
            USING ERRCODE = 'PF001', COLUMN = 'value';
    END IF;
    IF length(btrim(coalesce(p_reason, ''))) = 0 OR length(p_reason) > 2000 THEN
        RAISE EXCEPTION 'reason must be 1 to 2000 characters' USING ERRCODE = 'PF001', COLUMN = 'reason';
    END IF;
    IF NOT isfinite(p_expires_at) THEN
        RAISE EXCEPTION 'expires_at must be a time' USING ERRCODE = 'PF001', COLUMN = 'expires_at';
    END IF;
    PERFORM pg_advisory_xact_lock(7231546390112208);
    v_at := clock_timestamp();
    IF p_expires_at <= v_at THEN
        RAISE EXCEPTION 'expires_at must be in the future'
            USING ERRCODE = 'PF001', COLUMN = 'expires_at';
    END IF;
    UPDATE list_entries AS e
    SET removed_at = greatest(v_at, e.added_at), removed_by = v_actor
    WHERE e.list_name = p_list_name AND e.value = p_value AND e.removed_at IS NULL;
    INSERT INTO list_entries (list_name, value, reason, added_by, added_at, expires_at)
    VALUES (p_list_name, p_value, btrim(p_reason), v_actor, v_at, p_expires_at)
    RETURNING entry_id INTO v_entry_id;
    RETURN (SELECT jsonb_build_object(
                'entry_id', e.entry_id, 'list_name', l.list_name, 'subject', l.subject,
                'kind', l.kind, 'value', e.value, 'reason', e.reason, 'added_by', e.added_by,
                'added_at', to_char(e.added_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                'expires_at', to_char(e.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
            FROM list_entries AS e JOIN lists AS l ON l.list_name = e.list_name
            WHERE e.entry_id = v_entry_id);
END;
$$;

COMMENT ON FUNCTION add_list_entry(text, bigint, text, timestamptz, text) IS
    'Puts an account/merchant id on a list from now (until removed or expires_at); PF001 naming the field (unknown list, expiry not in the future).';

REVOKE ALL ON FUNCTION add_list_entry(text, bigint, text, timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION add_list_entry(text, bigint, text, timestamptz, text) TO pgfraud_app;
