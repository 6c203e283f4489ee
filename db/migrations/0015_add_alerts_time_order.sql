-- 0015: the alert queue can be read in transaction-time order (newest
-- transaction first), not only in the order alerts were raised: after a rule
-- change, re-raised alerts of old transactions buried the fresh ones.
-- get_alerts gains p_order and a time cursor (db/functions/get_alerts.sql);
-- its 7-parameter signature is dropped here, or calls with 7 arguments would
-- be ambiguous between the two. The index serves the time order's pages.
DROP FUNCTION IF EXISTS get_alerts(bigint, text, text, timestamptz, timestamptz, bigint, integer);

CREATE INDEX alerts_ts_idx ON alerts (ts, alert_id);
