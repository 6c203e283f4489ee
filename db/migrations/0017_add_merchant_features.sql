-- 0017: the merchant's known fraud as features of users' rules.
--
-- rule_features gains six features (README / docs: "Rules users write"):
-- the merchant's transactions (all accounts) in the 7 and 30 days (elapsed
-- 168 and 720 hours) before this one, the known fraud among them as known
-- at this transaction's time (labels and reviews by their known_at), and
-- its share. NULL for a row without a merchant. The rule code computes them
-- only for rules that read them (db/functions/_evaluate_from.sql).

ALTER TYPE rule_features
    ADD ATTRIBUTE merchant_transactions_7d bigint,
    ADD ATTRIBUTE merchant_fraud_7d bigint,
    ADD ATTRIBUTE merchant_fraud_share_7d numeric,
    ADD ATTRIBUTE merchant_transactions_30d bigint,
    ADD ATTRIBUTE merchant_fraud_30d bigint,
    ADD ATTRIBUTE merchant_fraud_share_30d numeric;
