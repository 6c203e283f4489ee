-- 0012: new_merchant_large's description says what unused_days (0009) made
-- it: a merchant new to the account in the last unused_days days. Only the
-- description of 0007 is replaced; one written by an owner stays.
UPDATE rules
SET description = 'Payment at a merchant the account had not used in unused_days days (0: ever), with an amount above multiplier x the average of the account''s prior transactions.'
WHERE rule_id = 'new_merchant_large'
  AND description = 'First payment of the account at this merchant, with an amount above multiplier x the average of the account''s prior transactions.';
