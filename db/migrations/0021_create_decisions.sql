-- 0021: one decision per transaction, kept as answered (issue 17).
--
--   decision_rule_sets: the live rule parameters a decision was made with,
--       stored once per distinct set by a trigger on rules
--       (_record_rule_set); decisions name it by its md5 (no foreign key:
--       a store never waits on, or fails for, that table).
--   decisions: one row per stored transaction, written by the scoring
--       trigger (_record_decisions) in the storing database transaction and
--       never rewritten. Transactions stored before this migration have none.
--
-- decisions carry account_id in every key, like alerts (DESIGN, Scale).

CREATE TABLE decision_rule_sets (
    rule_set_id text NOT NULL,
    parameters jsonb NOT NULL,
    first_used_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT decision_rule_sets_pkey PRIMARY KEY (rule_set_id)
);

COMMENT ON TABLE decision_rule_sets IS
    'The live rule parameters ({rule_id: parameters}) decisions were made with, once per distinct set; key: md5 of the JSON text.';

CREATE TABLE decisions (
    account_id bigint NOT NULL,
    transaction_id bigint NOT NULL,
    ts timestamptz NOT NULL,
    amount numeric NOT NULL,
    merchant_id bigint,
    outcome text NOT NULL,
    score integer NOT NULL,
    score_outcome text NOT NULL,
    rules jsonb NOT NULL,
    lists jsonb NOT NULL,
    policy_id bigint NOT NULL,
    rule_set_id text NOT NULL,
    decided_at timestamptz NOT NULL,
    decided_xact xid8 NOT NULL DEFAULT pg_current_xact_id(),
    CONSTRAINT decisions_pkey PRIMARY KEY (account_id, transaction_id),
    CONSTRAINT decisions_outcome_check CHECK (outcome IN ('approve', 'review', 'decline')),
    CONSTRAINT decisions_score_outcome_check CHECK (score_outcome IN ('approve', 'review', 'decline')),
    CONSTRAINT decisions_policy_id_fkey FOREIGN KEY (policy_id) REFERENCES decision_policies (policy_id)
);

CREATE INDEX decisions_transaction_idx ON decisions (transaction_id);
CREATE INDEX decisions_ts_idx ON decisions (ts, transaction_id);
CREATE INDEX decisions_outcome_ts_idx ON decisions (outcome, ts, transaction_id);
CREATE INDEX decisions_account_ts_idx ON decisions (account_id, ts, transaction_id);

COMMENT ON TABLE decisions IS
    'One decision per stored transaction (approve/review/decline), made in the storing database transaction and never rewritten.';
COMMENT ON COLUMN decisions.score IS 'The sum of the scores of the rules that fired.';
COMMENT ON COLUMN decisions.score_outcome IS 'What the score alone gave, before the lists.';
COMMENT ON COLUMN decisions.rules IS
    'The rules that fired: [{rule_id, score, observed, threshold, reason}] in rule_id order (decimals as strings); their parameters are in the rule set.';
COMMENT ON COLUMN decisions.lists IS
    'The list entries in force that applied: [{entry_id, list_name, subject, kind, value, reason, added_by, added_at, expires_at}].';
COMMENT ON COLUMN decisions.decided_at IS
    'When it was decided (clock time, under the rule-change lock): the policy and list entries in force then applied.';

GRANT SELECT ON decision_rule_sets, decisions TO pgfraud_app, pgfraud_readonly;
-- store_transactions gains a column (each row's decision); its file
-- re-creates it.
DROP FUNCTION IF EXISTS store_transactions(jsonb);
