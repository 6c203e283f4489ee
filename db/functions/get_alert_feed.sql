-- get_alert_feed(p_after_xact xid8, p_after_alert_id bigint, p_limit integer)
--     -> TABLE (event_id text, alert_id, transaction_id, account_id, ts, amount,
--               rule_id, observed, threshold, reason, raised_at)
--
-- The live feed: alerts raised after the position (p_after_xact,
-- p_after_alert_id), in the order (raised_xact, alert_id), at most p_limit
-- (1..10000). Only alerts of database transactions older than every
-- transaction still running are returned (raised_xact below the snapshot's
-- xmin), so an alert that commits late is never skipped by a reader that has
-- moved past it; an open transaction holds the feed back until it ends.
-- event_id is '<raised_xact>-<alert_id>', the position to resume after (an
-- SSE client's Last-Event-ID). Start with get_alert_feed_start().
-- On Citus (_is_distributed) each node numbers its own transactions, so the
-- position's first number is a time instead, milliseconds since 1970 UTC:
-- alerts come in the order (raised_at in whole milliseconds, alert_id), only
-- those raised before the feed's horizon (_feed_horizon: the earliest open
-- transaction on any node), so a late commit is not skipped there either.
-- Errors: PF001 (invalid_input) for a limit out of range or a missing position.
CREATE OR REPLACE FUNCTION get_alert_feed(
    p_after_xact xid8,
    p_after_alert_id bigint,
    p_limit integer DEFAULT 1000
)
RETURNS TABLE (
    event_id text,
    alert_id bigint,
    transaction_id bigint,
    account_id bigint,
    ts timestamptz,
    amount numeric,
    rule_id text,
    observed numeric,
    threshold numeric,
    reason text,
    raised_at timestamptz
)
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_horizon timestamptz;
    v_after_ms numeric;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 10000' USING ERRCODE = 'PF001', COLUMN = 'limit';
    END IF;
    IF p_after_xact IS NULL OR p_after_alert_id IS NULL THEN
        RAISE EXCEPTION 'a feed position needs its transaction and alert id'
            USING ERRCODE = 'PF001', COLUMN = 'last_event_id';
    END IF;
    IF _is_distributed() THEN
        v_horizon := _feed_horizon();
        v_after_ms := p_after_xact::text::numeric;
        RETURN QUERY
            SELECT floor(extract(epoch FROM al.raised_at) * 1000)::bigint::text || '-'
                       || al.alert_id::text,
                   al.alert_id, al.transaction_id, al.account_id, al.ts, al.amount, al.rule_id,
                   al.observed, al.threshold, al.reason, al.raised_at
            FROM alerts AS al
            WHERE al.raised_at >= to_timestamp(floor(v_after_ms) / 1000) - interval '1 millisecond'
              AND al.raised_at < v_horizon
              AND (floor(extract(epoch FROM al.raised_at) * 1000), al.alert_id)
                  > (v_after_ms, p_after_alert_id)
            ORDER BY floor(extract(epoch FROM al.raised_at) * 1000), al.alert_id
            LIMIT p_limit;
        RETURN;
    END IF;
    RETURN QUERY
        SELECT al.raised_xact::text || '-' || al.alert_id::text, al.alert_id, al.transaction_id,
               al.account_id, al.ts, al.amount, al.rule_id, al.observed, al.threshold, al.reason,
               al.raised_at
        FROM alerts AS al
        WHERE (al.raised_xact, al.alert_id) > (p_after_xact, p_after_alert_id)
          AND al.raised_xact < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY al.raised_xact, al.alert_id
        LIMIT p_limit;
END;
$$;

COMMENT ON FUNCTION get_alert_feed(xid8, bigint, integer) IS
    'Alerts raised after a feed position, in raise order, only from finished database transactions; event_id is the next position.';

REVOKE ALL ON FUNCTION get_alert_feed(xid8, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_alert_feed(xid8, bigint, integer) TO pgfraud_app, pgfraud_readonly;
