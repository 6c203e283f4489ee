-- 0010: score_transactions gains p_recompute (default false).
--
-- Without it, the events of rules that are live with the parameters asked
-- for are read from `alerts` (kept equal to the rule code by scoring on
-- arrival) instead of computed again; p_recompute = true forces the pass
-- from scratch. The three-argument function is dropped here so that the
-- new one (db/functions/score_transactions.sql, applied after the
-- migrations) is the only one: two would make every call ambiguous.
DROP FUNCTION IF EXISTS score_transactions(timestamptz, timestamptz, jsonb);
