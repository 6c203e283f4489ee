-- 0014: the rules table's old single trigger (replaced by one trigger per
-- event in _rescore_on_rule_change.sql) is dropped here, once, instead of
-- by that function file on every migrate: DROP TRIGGER takes an ACCESS
-- EXCLUSIVE lock on `rules`, which every store reads in its trigger.
DROP TRIGGER IF EXISTS rules_rescore_alerts ON rules;
