-- 0008: rules users write: a boolean SQL expression over per-transaction features.
--
-- rules.expression: NULL for the built-in rules (code in _evaluate_from);
-- for a user's rule, an expression checked by check_rule_expression (only
-- the features of rule_features, numbers, comparison and logic operators and
-- a few pure functions) and compiled with the others into
-- _custom_rule_events (db/functions/_compile_custom_rules.sql). Such a rule
-- has no parameters ({}).

ALTER TABLE rules ADD COLUMN expression text;

COMMENT ON COLUMN rules.expression IS
    'A user''s rule: boolean SQL expression over the features of rule_features; NULL for built-in rules.';

-- What a user's rule sees of one transaction (event time: only the past and this one).
CREATE TYPE rule_features AS (
    transaction_id bigint,
    account_id bigint,
    ts timestamptz,
    amount numeric,                 -- this transaction, currency units
    merchant_id bigint,             -- NULL: unknown
    prior_count bigint,             -- the account's transactions before this one
    prior_average numeric,          -- their average amount (NULL when none)
    seconds_since_previous numeric, -- since the latest earlier time (NULL when none)
    count_1h bigint,                -- transactions in (ts - 1 hour, ts], this one included
    sum_1h numeric,                 -- their amounts
    count_24h bigint,               -- transactions in (ts - 24 hours, ts], this one included
    sum_24h numeric,                -- their amounts
    first_at_merchant boolean       -- no earlier transaction of the account at this merchant (NULL: no merchant)
);

COMMENT ON TYPE rule_features IS
    'The per-transaction features a user''s rule expression may use (see README, Rules users write).';
