-- 0002: the rule catalogue and the shape of a fired rule.
--
-- Each rule is a row here (parameters as a JSON object) plus code in
-- db/functions/evaluate_account.sql. Parameters are passed into the rule code,
-- never read deep inside it, so a backtest can try other values.

CREATE TABLE rules (
    rule_id text NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    parameters jsonb NOT NULL DEFAULT '{}',
    description text NOT NULL,
    CONSTRAINT rules_pkey PRIMARY KEY (rule_id),
    CONSTRAINT rules_rule_id_check CHECK (rule_id ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT rules_parameters_check CHECK (jsonb_typeof(parameters) = 'object')
);

COMMENT ON TABLE rules IS 'Fraud rules: whether each is enabled and its parameters.';

INSERT INTO rules (rule_id, enabled, parameters, description) VALUES
    ('below_average', true, '{"factor": 0.9, "min_history": 1}',
     'Amount below factor x the average of the account''s prior transactions (the seed''s example rule).'),
    ('amount_spike', true, '{"multiplier": 5, "min_history": 3}',
     'Amount above multiplier x the average of the account''s prior transactions: a sudden large spend.'),
    ('large_amount', true, '{"threshold": 10000}',
     'Amount at or above an absolute threshold, whatever the account''s history.'),
    ('velocity', true, '{"window_seconds": 3600, "max_transactions": 5}',
     'More than max_transactions transactions (this one included) within window_seconds of elapsed time.'),
    ('rapid_succession', true, '{"min_gap_seconds": 10}',
     'Less than min_gap_seconds of elapsed time since the account''s previous transaction.');

-- One fired rule on one transaction.
CREATE TYPE fraud_event AS (
    transaction_id bigint,
    account_id bigint,
    ts timestamptz,
    amount numeric,
    rule_id text,
    observed numeric,
    threshold numeric,
    reason text
);

COMMENT ON TYPE fraud_event IS
    'A fired rule: the transaction, the rule, the observed value, the threshold it crossed and a reason.';
