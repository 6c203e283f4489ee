-- 0023: decisions on the live feed (issue 17): /decisions/stream and
-- `pgfraud decisions --follow` read the decisions made after a position in
-- the order of the database transactions that made them, (decided_xact,
-- transaction_id), as the alert feed reads alerts by (raised_xact,
-- alert_id). The index serves those reads (db/functions/get_decision_feed.sql).

CREATE INDEX decisions_feed_idx ON decisions (decided_xact, transaction_id);
