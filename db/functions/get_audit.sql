-- get_audit(p_actor text, p_object_kind text, p_from timestamptz,
--           p_to timestamptz, p_before_audit_id bigint, p_limit integer,
--           p_object_key text)
--     -> TABLE (audit_id, at, actor, action, object_kind, object_key,
--               before, after, alerts_added, alerts_removed)
--
-- The audit trail, newest first (descending audit_id), at most p_limit
-- (1..10000) rows with audit_id below p_before_audit_id (NULL: from the
-- newest; the cursor of the next page is the last row's audit_id).
-- Filters, each NULL for any: the actor (exact); the object kind ('rule',
-- 'shadow_rule', 'policy', 'list', 'list_entry', 'review', 'token', 'case',
-- 'case_alert', and what
-- else attaches
-- audit_change); the object key (exact, like a rule_id); the time of the
-- change in [p_from, p_to). before/after are the rows as JSON (NULL for an
-- insert's before, a delete's after); alerts_added/alerts_removed are set
-- for a rule change that re-scored the stored history, NULL otherwise.
-- Errors: PF001 (invalid_input, COLUMN limit) for a limit out of range.
CREATE OR REPLACE FUNCTION get_audit(
    p_actor text DEFAULT NULL,
    p_object_kind text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_before_audit_id bigint DEFAULT NULL,
    p_limit integer DEFAULT 100,
    p_object_key text DEFAULT NULL
)
RETURNS TABLE (
    audit_id bigint,
    at timestamptz,
    actor text,
    action text,
    object_kind text,
    object_key text,
    before jsonb,
    after jsonb,
    alerts_added bigint,
    alerts_removed bigint
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'limit must be from 1 to 10000' USING ERRCODE = 'PF001', COLUMN = 'limit';
    END IF;
    RETURN QUERY
    SELECT a.audit_id, a.at, a.actor, a.action, a.object_kind, a.object_key, a.before, a.after,
           a.alerts_added, a.alerts_removed
    FROM audit_log AS a
    WHERE (p_actor IS NULL OR a.actor = p_actor)
      AND (p_object_kind IS NULL OR a.object_kind = p_object_kind)
      AND (p_object_key IS NULL OR a.object_key = p_object_key)
      AND (p_from IS NULL OR a.at >= p_from)
      AND (p_to IS NULL OR a.at < p_to)
      AND (p_before_audit_id IS NULL OR a.audit_id < p_before_audit_id)
    ORDER BY a.audit_id DESC
    LIMIT p_limit;
END;
$$;

COMMENT ON FUNCTION get_audit(text, text, timestamptz, timestamptz, bigint, integer, text) IS
    'The audit trail newest first, filtered by actor, object kind and key, time [from, to), below an audit_id cursor; PF001 for a limit outside 1..10000.';

REVOKE ALL ON FUNCTION get_audit(text, text, timestamptz, timestamptz, bigint, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_audit(text, text, timestamptz, timestamptz, bigint, integer, text)
    TO pgfraud_app, pgfraud_readonly;
