-- 0007: merchants, time windows and the rules that use them.
--
-- transactions.merchant_id: optional (NULL: unknown merchant), >= 0. Two
-- indexes serve the merchant rules:
--   transactions_merchant_history_idx: a merchant's transactions in time
--       order (compromised_merchant reads the merchant's recent history);
--   transactions_account_merchant_idx: has this account paid this merchant
--       before? (new_merchant_large, one probe per transaction).
-- Rules added: compromised_merchant, new_merchant_large, same_timestamp.
-- amount_spike and below_average gain window_days (0: the whole past).
-- fraud_labels and reviews are now read by one rule (compromised_merchant),
-- so changes to them re-score the rows they affect (db/functions/
-- _rescore_merchant_rows.sql).

ALTER TABLE transactions
    ADD COLUMN merchant_id bigint,
    ADD CONSTRAINT transactions_merchant_id_check CHECK (merchant_id >= 0);

COMMENT ON COLUMN transactions.merchant_id IS
    'Where the card was used (optional; NULL: unknown). Read by compromised_merchant and new_merchant_large.';

CREATE INDEX transactions_merchant_history_idx
    ON transactions (merchant_id, ts, transaction_id)
    WHERE merchant_id IS NOT NULL;

CREATE INDEX transactions_account_merchant_idx
    ON transactions (account_id, merchant_id, ts, transaction_id)
    WHERE merchant_id IS NOT NULL;

COMMENT ON TABLE fraud_labels IS
    'Known fraudulent transactions and their scenario: for measuring precision and recall, and as reported fraud for compromised_merchant (after its reporting delay).';

UPDATE rules
SET parameters = parameters || '{"window_days": 0}'
WHERE rule_id IN ('below_average', 'amount_spike');

-- Defaults chosen by measurement on the generator's default mix (README,
-- "Detection quality"): below_average as a card-testing detector (a payment
-- under 5% of the usual, after 5 payments); velocity over 10 minutes.
UPDATE rules SET parameters = '{"factor": 0.05, "min_history": 5, "window_days": 0}'
WHERE rule_id = 'below_average';
UPDATE rules SET parameters = '{"window_seconds": 600, "max_transactions": 2}'
WHERE rule_id = 'velocity';

INSERT INTO rules (rule_id, enabled, parameters, description) VALUES
    ('compromised_merchant', false,
     '{"window_days": 30, "delay_days": 1, "min_known_fraud": 3, "min_fraud_share": 0.5}',
     'Payment at a merchant where, among its transactions from window_days to delay_days before this one, at least min_known_fraud and a share of at least min_fraud_share are known fraud (labelled, or confirmed by review).'),
    ('new_merchant_large', true,
     '{"multiplier": 2, "min_history": 5}',
     'First payment of the account at this merchant, with an amount above multiplier x the average of the account''s prior transactions.'),
    ('same_timestamp', false,
     '{"max_transactions": 1}',
     'More than max_transactions transactions of the account at exactly the same time (this one included); rapid_succession ignores equal times.');

-- The rule code reads labels (compromised_merchant) in the service's scoring too.
GRANT SELECT ON fraud_labels TO pgfraud_app;
