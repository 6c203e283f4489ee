-- get_decision_feed(p_after_xact xid8, p_after_transaction_id bigint, p_limit integer)
--     -> TABLE (event_id text, decision jsonb)
--
-- The live feed of decisions: the decisions made after the position
-- (p_after_xact, p_after_transaction_id), in the order (decided_xact,
-- transaction_id), at most p_limit (1..10000). Only decisions of database
-- transactions older than every transaction still running are returned
-- (decided_xact below the snapshot's xmin), so a decision that commits late
-- is never skipped by a reader that has moved past it; an open transaction
-- holds the feed back until it ends (as get_alert_feed). event_id is
-- '<decided_xact>-<transaction_id>', the position to resume after (an SSE
-- client's Last-Event-ID); decision is _decision_json (as get_decision).
-- Start from get_alert_feed_start(), the position of now for both feeds.
-- On Citus (_is_distributed) the position's first number is a time,
-- milliseconds since 1970 UTC, as get_alert_feed's there: decisions come
-- in the order (decided_at in whole milliseconds, transaction_id), only
-- those decided before the feed's horizon (_feed_horizon). A transaction id
-- is unique per account there, so two accounts' decisions of the same
-- transaction id in the same millisecond share a position: a page never
-- ends between them (it holds every decision of its last position, so it
-- may hold more than p_limit), and a client resuming after that position
-- skips none (docs/scaling.md). Within a position, by account_id.
-- Errors: PF001 (invalid_input) for a limit out of range or a missing
-- position.
CREATE OR REPLACE FUNCTION get_decision_feed(
    p_after_xact xid8,
    p_after_transaction_id bigint,
    p_limit integer DEFAULT 1000
)
RETURNS TABLE (event_id text, decision jsonb)
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_horizon timestamptz;
    v_after_ms numeric;
    v_last_ms numeric;
    v_last_transaction_id bigint;
    v_sharing bigint := 0;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 10000' USING ERRCODE = 'PF001', COLUMN = 'limit';
    END IF;
    IF p_after_xact IS NULL OR p_after_transaction_id IS NULL THEN
        RAISE EXCEPTION 'a feed position needs its transaction and transaction id'
            USING ERRCODE = 'PF001', COLUMN = 'last_event_id';
    END IF;
    IF _is_distributed() THEN
        v_horizon := _feed_horizon();
        v_after_ms := p_after_xact::text::numeric;
        -- The page's last position: its p_limit-th decision's (none: all to
        -- the horizon). Every decision of that position goes in the page.
        SELECT floor(extract(epoch FROM d.decided_at) * 1000), d.transaction_id
        INTO v_last_ms, v_last_transaction_id
        FROM decisions AS d
        WHERE d.decided_at >= to_timestamp(floor(v_after_ms) / 1000) - interval '1 millisecond'
          AND d.decided_at < v_horizon
          AND (floor(extract(epoch FROM d.decided_at) * 1000), d.transaction_id)
              > (v_after_ms, p_after_transaction_id)
        ORDER BY floor(extract(epoch FROM d.decided_at) * 1000), d.transaction_id
        OFFSET p_limit - 1
        LIMIT 1;
        IF v_last_ms IS NOT NULL THEN
            SELECT count(*) INTO v_sharing
            FROM decisions AS d
            WHERE d.transaction_id = v_last_transaction_id
              AND d.decided_at >= to_timestamp(v_last_ms / 1000)
              AND d.decided_at < to_timestamp((v_last_ms + 1) / 1000);
        END IF;
        RETURN QUERY
            SELECT p.ms::text || '-' || (p.d).transaction_id::text, _decision_json(p.d)
            FROM (
                -- The page's rows first, as the table's row type (on Citus a
                -- row in a query is its shard's type), then their JSON.
                SELECT floor(extract(epoch FROM d.decided_at) * 1000)::bigint AS ms,
                       ROW(d.*)::decisions AS d
                FROM decisions AS d
                WHERE d.decided_at >= to_timestamp(floor(v_after_ms) / 1000)
                                      - interval '1 millisecond'
                  AND d.decided_at < v_horizon
                  AND (floor(extract(epoch FROM d.decided_at) * 1000), d.transaction_id)
                      > (v_after_ms, p_after_transaction_id)
                  AND (v_last_ms IS NULL
                       OR (floor(extract(epoch FROM d.decided_at) * 1000), d.transaction_id)
                          <= (v_last_ms, v_last_transaction_id))
                -- Ordered and limited (by at most the page and the decisions
                -- sharing its last position), so Citus runs _decision_json
                -- on the coordinator, not on the shards.
                ORDER BY floor(extract(epoch FROM d.decided_at) * 1000), d.transaction_id
                LIMIT p_limit + v_sharing
            ) AS p
            ORDER BY p.ms, (p.d).transaction_id, (p.d).account_id;
        RETURN;
    END IF;
    RETURN QUERY
        SELECT d.decided_xact::text || '-' || d.transaction_id::text, _decision_json(d)
        FROM decisions AS d
        WHERE (d.decided_xact, d.transaction_id) > (p_after_xact, p_after_transaction_id)
          AND d.decided_xact < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY d.decided_xact, d.transaction_id
        LIMIT p_limit;
END;
$$;

COMMENT ON FUNCTION get_decision_feed(xid8, bigint, integer) IS
    'Decisions made after a feed position, in the order of the database transactions that made them, only from finished ones; event_id is the next position.';

REVOKE ALL ON FUNCTION get_decision_feed(xid8, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_decision_feed(xid8, bigint, integer) TO pgfraud_app, pgfraud_readonly;
