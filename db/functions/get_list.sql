-- get_list(p_list_name text, p_at timestamptz DEFAULT NULL) -> jsonb
--
-- One list and its entries in force at p_at (NULL: now): {list_name,
-- subject, kind, description, created_by, created_at, entries: [{entry_id,
-- value, reason, added_by, added_at, expires_at}]} (entries by value;
-- times ISO 8601 UTC ms).
-- Errors: PF006 (list_not_found, COLUMN list_name) for no such list.
CREATE OR REPLACE FUNCTION get_list(p_list_name text, p_at timestamptz DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_at timestamptz := coalesce(p_at, clock_timestamp());
    v_result jsonb;
BEGIN
    SELECT jsonb_build_object(
        'list_name', l.list_name, 'subject', l.subject, 'kind', l.kind,
        'description', l.description, 'created_by', l.created_by,
        'created_at', to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'entries', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                               'entry_id', e.entry_id, 'value', e.value, 'reason', e.reason,
                               'added_by', e.added_by,
                               'added_at', to_char(e.added_at AT TIME ZONE 'UTC',
                                                   'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                               'expires_at', to_char(e.expires_at AT TIME ZONE 'UTC',
                                                     'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
                           ORDER BY e.value), '[]')
                    FROM list_entries AS e
                    WHERE e.list_name = l.list_name
                      AND e.added_at <= v_at
                      AND (e.removed_at IS NULL OR e.removed_at > v_at)
                      AND (e.expires_at IS NULL OR e.expires_at > v_at)))
    INTO v_result
    FROM lists AS l
    WHERE l.list_name = p_list_name;
    IF v_result IS NULL THEN
        RAISE EXCEPTION 'no list named %', coalesce(p_list_name, 'null')
            USING ERRCODE = 'PF006', COLUMN = 'list_name';
    END IF;
    RETURN v_result;
END;
$$;

COMMENT ON FUNCTION get_list(text, timestamptz) IS
    'A list and its entries in force at p_at (NULL: now); PF006 for no such list.';

REVOKE ALL ON FUNCTION get_list(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_list(text, timestamptz) TO pgfraud_app, pgfraud_readonly;
