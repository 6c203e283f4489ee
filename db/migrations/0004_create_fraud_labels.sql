-- 0004: ground-truth fraud labels, for evaluation only.
--
-- Labels come from the generator's sidecar file (transaction_id, scenario) or
-- from investigators; they never enter `transactions`, and no rule reads them.
-- evaluate_rules() compares the rules' events with them. No foreign key: a
-- label may be loaded before or without its transaction.

CREATE TABLE fraud_labels (
    transaction_id bigint NOT NULL,
    scenario text NOT NULL,
    CONSTRAINT fraud_labels_pkey PRIMARY KEY (transaction_id),
    CONSTRAINT fraud_labels_scenario_check CHECK (scenario ~ '^[a-z][a-z0-9_]{0,62}$')
);

COMMENT ON TABLE fraud_labels IS
    'Known fraudulent transactions and their scenario, for measuring precision and recall.';

GRANT SELECT ON fraud_labels TO pgfraud_readonly;
