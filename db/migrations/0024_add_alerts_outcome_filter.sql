-- 0024: the alert queue shows each alert's decision outcome and filters by
-- it, and an account's history shows each transaction's decision (issue
-- 17: the page). get_alerts and count_alerts gain p_outcome
-- (db/functions/get_alerts.sql, count_alerts.sql) and get_alerts two result
-- columns; the old signatures are dropped here, or calls with their
-- arguments would be ambiguous. get_account_history gains a result column
-- (decision), which CREATE OR REPLACE cannot add.
DROP FUNCTION IF EXISTS get_alerts(bigint, text, text, timestamptz, timestamptz, bigint, integer, text, timestamptz);
DROP FUNCTION IF EXISTS count_alerts(bigint, text, text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS get_account_history(bigint, integer, timestamptz, bigint);
