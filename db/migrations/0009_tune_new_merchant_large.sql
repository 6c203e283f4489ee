-- 0009: new_merchant_large judges "new" over a window: unused_days.
--
-- A merchant counts as new to the account when it has not paid there in the
-- last unused_days days (0: never). Stored rules get the parameter written
-- in (0 keeps their meaning); the default rule is then set to the values
-- measured best on the generator's default mix (README, "Detection quality"):
-- a payment above 2 x the account's average at a merchant it has not used
-- in 30 days, which catches slow compromises on long histories, where most
-- shops have been seen once.

UPDATE rules
SET parameters = parameters || '{"unused_days": 0}'
WHERE rule_id = 'new_merchant_large' AND NOT parameters ? 'unused_days';

UPDATE rules
SET parameters = '{"multiplier": 2, "min_history": 5, "unused_days": 30}'
WHERE rule_id = 'new_merchant_large'
  AND parameters = '{"multiplier": 2, "min_history": 5, "unused_days": 0}';
