-- _audit_row_json(p_row jsonb, p_table regclass) -> jsonb
--
-- A row of p_table as audit_change() records it in audit_log's before and
-- after: p_row (to_jsonb of the row) with every timestamptz column's value
-- written as on the wire everywhere else, UTC with milliseconds and Z
-- ("2026-12-04T10:00:00.123Z"), not to_jsonb's microseconds and "+00:00".
-- The columns are found by type in pg_attribute, never by the look of a
-- value, so free text (a note that reads like a time) is left as written.
-- NULL and infinite times stay as they are. NULL for a NULL row. Raises
-- nothing.
CREATE OR REPLACE FUNCTION _audit_row_json(p_row jsonb, p_table regclass)
RETURNS jsonb
LANGUAGE sql
STABLE
SET search_path = public, pg_temp
AS $$
    SELECT p_row || coalesce(
        (SELECT jsonb_object_agg(
                    a.attname,
                    to_char((p_row ->> a.attname)::timestamptz AT TIME ZONE 'UTC',
                            'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
         FROM pg_attribute AS a
         WHERE a.attrelid = p_table
           AND a.attnum > 0
           AND NOT a.attisdropped
           AND a.atttypid = 'timestamptz'::regtype
           AND p_row ->> a.attname IS NOT NULL
           AND isfinite((p_row ->> a.attname)::timestamptz)),
        '{}'::jsonb)
$$;

COMMENT ON FUNCTION _audit_row_json(jsonb, regclass) IS
    'A row (to_jsonb) as the audit log records it: timestamptz columns as UTC with milliseconds and Z, like the wire; other values unchanged; NULL for NULL.';

REVOKE ALL ON FUNCTION _audit_row_json(jsonb, regclass) FROM PUBLIC;
