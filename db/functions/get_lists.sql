-- get_lists() -> jsonb
--
-- Every list, by name: [{list_name, subject, kind, description, created_by,
-- created_at, entries (the number in force now)}]. Raises nothing.
CREATE OR REPLACE FUNCTION get_lists()
RETURNS jsonb
LANGUAGE sql
STABLE
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'list_name', l.list_name, 'subject', l.subject, 'kind', l.kind,
               'description', l.description, 'created_by', l.created_by,
               'created_at', to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
               'entries', (SELECT count(*) FROM list_entries AS e
                           WHERE e.list_name = l.list_name
                             AND e.added_at <= clock_timestamp()
                             AND (e.removed_at IS NULL OR e.removed_at > clock_timestamp())
                             AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp())))
               ORDER BY l.list_name), '[]')
    FROM lists AS l;
$$;

COMMENT ON FUNCTION get_lists() IS
    'Every allow/block list with the number of its entries in force now.';

REVOKE ALL ON FUNCTION get_lists() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_lists() TO pgfraud_app, pgfraud_readonly;
