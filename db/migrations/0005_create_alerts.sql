-- 0005: score on arrival: alerts, per-account running state, reviews.
--
-- A transaction is scored in the database transaction that stores it: a
-- statement-level trigger on `transactions` (db/functions/
-- score_changed_transactions.sql) runs the rule code over the rows each
-- statement adds, removes or changes, and keeps here
--   account_states: each account's running count and sum of amounts, so the
--       prior average of a new row needs no pass over the account's past;
--   alerts: one row per fired rule per transaction, exactly
--       evaluate_account(account, active_rule_parameters()) at every commit.
-- reviews: analysts' decisions (confirmed fraud / false positive) on
-- transactions; they are not alerts, so re-scoring never touches them.
--
-- Every table carries account_id and each unique key that must hold per
-- account includes it, ready for distribution by account_id (DESIGN, Scale).
-- The existing transactions are scored after the function files are applied
-- (db/migrate.py, AFTER_FUNCTIONS).

CREATE TABLE account_states (
    account_id bigint NOT NULL,
    transaction_count bigint NOT NULL,
    amount_sum numeric NOT NULL,
    -- No CHECK on the count: the trigger upserts deltas, and PostgreSQL checks
    -- a proposed row (a negative delta) before it finds the conflict.
    CONSTRAINT account_states_pkey PRIMARY KEY (account_id)
);

COMMENT ON TABLE account_states IS
    'Running state per account (count and sum of its stored transactions), kept by the scoring trigger.';

CREATE TABLE alerts (
    alert_id bigint GENERATED ALWAYS AS IDENTITY,
    transaction_id bigint NOT NULL,
    account_id bigint NOT NULL,
    ts timestamptz NOT NULL,
    amount numeric NOT NULL,
    rule_id text NOT NULL,
    observed numeric,
    threshold numeric,
    reason text NOT NULL,
    parameters jsonb NOT NULL,
    raised_at timestamptz NOT NULL DEFAULT now(),
    -- The database transaction that raised the alert: the live feed delivers
    -- alerts in (raised_xact, alert_id) order, and only those of transactions
    -- older than every running one, so a slow writer never lets a reader skip
    -- an alert that commits late.
    raised_xact xid8 NOT NULL DEFAULT pg_current_xact_id(),
    CONSTRAINT alerts_pkey PRIMARY KEY (alert_id),
    -- One alert per fired rule per transaction; also is_fraud's order.
    CONSTRAINT alerts_account_ts_transaction_rule_key
        UNIQUE (account_id, ts, transaction_id, rule_id)
);

CREATE INDEX alerts_transaction_idx ON alerts (transaction_id);
CREATE INDEX alerts_raised_idx ON alerts (raised_xact, alert_id);
CREATE INDEX alerts_rule_idx ON alerts (rule_id, alert_id);

COMMENT ON TABLE alerts IS
    'One row per fired rule per stored transaction, with the parameters that produced it; kept equal to evaluate_account(account, live rules) by the scoring trigger.';
COMMENT ON COLUMN alerts.parameters IS 'The rule parameters that produced this alert.';
COMMENT ON COLUMN alerts.raised_xact IS 'The database transaction that raised it (feed order).';

CREATE TABLE reviews (
    review_id bigint GENERATED ALWAYS AS IDENTITY,
    transaction_id bigint NOT NULL,
    account_id bigint NOT NULL,
    status text NOT NULL,
    note text NOT NULL DEFAULT '',
    reviewer text NOT NULL,
    reviewed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reviews_pkey PRIMARY KEY (review_id),
    CONSTRAINT reviews_status_check CHECK (status IN ('confirmed_fraud', 'false_positive')),
    CONSTRAINT reviews_note_check CHECK (length(note) <= 2000),
    CONSTRAINT reviews_reviewer_check CHECK (length(reviewer) BETWEEN 1 AND 200)
);

CREATE INDEX reviews_transaction_idx ON reviews (transaction_id, review_id);
CREATE INDEX reviews_account_idx ON reviews (account_id, review_id);

COMMENT ON TABLE reviews IS
    'Analysts'' decisions on transactions, newest last; the latest per transaction counts (as a label in evaluate_rules).';

-- store_transactions gains a column (the verdict: each row's alerts); its
-- file re-creates it.
DROP FUNCTION IF EXISTS store_transactions(jsonb);

-- Written only by SECURITY DEFINER functions (the trigger, review_transaction).
GRANT SELECT ON account_states, alerts, reviews TO pgfraud_app, pgfraud_readonly;
