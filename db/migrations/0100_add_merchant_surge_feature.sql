-- 0100: a surge at the merchant as a feature of users' rules.
--
-- rule_features gains merchant_surge_7d (docs/rules.md, "Rules users
-- write"; docs/detection.md, "A surge at the merchant"): the merchant's
-- transactions (all accounts) in [ts - 7 days, ts) divided by the number
-- expected in 7 days at its own rate in the 30 days before them
-- ([ts - 37 days, ts - 7 days), elapsed 888 and 168 hours, measured from its
-- first transaction in there), the expected number taken as at least 1; 4
-- places. NULL without a merchant, and when the merchant's first transaction
-- in that base is less than 7 days before ts - 7 days (too little past to
-- compare with: a new merchant, or a database with little history). It
-- needs no labels: a breached merchant shows it from its first days. The
-- rule code computes it only for rules that read a merchant feature
-- (db/functions/_evaluate_from.sql).

ALTER TYPE rule_features
    ADD ATTRIBUTE merchant_surge_7d numeric;
