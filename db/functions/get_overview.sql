-- get_overview() -> jsonb
--
-- The analyst's overview in one answer:
--   {"until": the end of the last hour stored (ISO time, or null when nothing
--             is stored),
--    "hours": 24 objects {"hour", "transactions", "alerts"} for the last day
--             stored (the 24 hours ending with the hour of the latest
--             transaction time), oldest first; "alerts" counts alerts by their
--             transaction's time,
--    "by_rule": [{"rule_id", "alerts", "unreviewed"}] for every rule in the
--             catalogue (all stored alerts), rule_id order,
--    "backlog": {"unreviewed", "confirmed_fraud", "false_positive"}: alerted
--             transactions by their latest review}.
-- Counts are integers. Raises nothing.
CREATE OR REPLACE FUNCTION get_overview()
RETURNS jsonb
LANGUAGE sql
STABLE
AS $$
    WITH latest AS (
        SELECT date_trunc('hour', max(t.ts), 'UTC') + interval '1 hour' AS until FROM transactions AS t
    ),
    hours AS (
        SELECT h.hour
        FROM latest AS l
        CROSS JOIN LATERAL generate_series(l.until - interval '24 hours', l.until - interval '1 hour',
                                           interval '1 hour') AS h(hour)
    ),
    transaction_counts AS (
        SELECT date_trunc('hour', t.ts, 'UTC') AS hour, count(*) AS n
        FROM transactions AS t, latest AS l
        WHERE t.ts >= l.until - interval '24 hours' AND t.ts < l.until
        GROUP BY 1
    ),
    alert_counts AS (
        SELECT date_trunc('hour', al.ts, 'UTC') AS hour, count(*) AS n
        FROM alerts AS al, latest AS l
        WHERE al.ts >= l.until - interval '24 hours' AND al.ts < l.until
        GROUP BY 1
    ),
    decisions AS (
        SELECT DISTINCT ON (rv.transaction_id) rv.transaction_id, rv.status
        FROM reviews AS rv
        ORDER BY rv.transaction_id, rv.review_id DESC
    ),
    alerted AS (
        SELECT al.transaction_id, al.rule_id, coalesce(d.status, 'unreviewed') AS status
        FROM alerts AS al
        LEFT JOIN decisions AS d ON d.transaction_id = al.transaction_id
    ),
    by_rule AS (
        SELECT r.rule_id, count(a.rule_id) AS alerts,
               count(a.rule_id) FILTER (WHERE a.status = 'unreviewed') AS unreviewed
        FROM rules AS r
        LEFT JOIN alerted AS a ON a.rule_id = r.rule_id
        GROUP BY r.rule_id
    ),
    backlog AS (
        SELECT count(*) FILTER (WHERE b.status = 'unreviewed') AS unreviewed,
               count(*) FILTER (WHERE b.status = 'confirmed_fraud') AS confirmed_fraud,
               count(*) FILTER (WHERE b.status = 'false_positive') AS false_positive
        FROM (SELECT DISTINCT a.transaction_id, a.status FROM alerted AS a) AS b
    )
    SELECT jsonb_build_object(
        'until', to_char((SELECT l.until FROM latest AS l) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'hours', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'hour', to_char(h.hour AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                       'transactions', coalesce(tc.n, 0),
                       'alerts', coalesce(ac.n, 0)) ORDER BY h.hour)
            FROM hours AS h
            LEFT JOIN transaction_counts AS tc ON tc.hour = h.hour
            LEFT JOIN alert_counts AS ac ON ac.hour = h.hour), '[]'::jsonb),
        'by_rule', coalesce((
            SELECT jsonb_agg(jsonb_build_object('rule_id', b.rule_id, 'alerts', b.alerts,
                                                'unreviewed', b.unreviewed) ORDER BY b.rule_id)
            FROM by_rule AS b), '[]'::jsonb),
        'backlog', (SELECT to_jsonb(b) FROM backlog AS b)
    );
$$;

COMMENT ON FUNCTION get_overview() IS
    'The overview: transactions and alerts per hour over the last day stored, alerts by rule, the review backlog (jsonb).';

REVOKE ALL ON FUNCTION get_overview() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_overview() TO pgfraud_app, pgfraud_readonly;
