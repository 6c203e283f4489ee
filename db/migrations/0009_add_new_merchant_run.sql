-- 0009: merchants new "in N days" (unused_days) and the new_merchant_run rule.
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

-- new_merchant_run: several payments in a row at merchants new to the
-- account, above its usual amounts together (a slow compromise: each payment
-- alone may stay under new_merchant_large's multiplier).
INSERT INTO rules (rule_id, enabled, parameters, description) VALUES
    ('new_merchant_run', true,
     '{"multiplier": 1.2, "max_run": 4, "unused_days": 30, "min_history": 5}',
     'This payment and up to max_run - 1 just before it, each at a merchant the account had not used in unused_days days (0: ever): fires when the last 2 or more of them average above multiplier x the account''s prior average.');
