-- 0028: shadow rules (issue 18, part 4).
--
--   shadow_rules: a rule (built-in or a user's, live or off) run with a
--       candidate parameter set beside the live rules, one shadow per rule:
--       scored on arrival (_rescore_accounts, _score_shadow_rules) into
--       shadow_alerts, which nothing that decides reads (is_fraud, alerts,
--       decisions, the queue, the feed). Started, promoted and dropped by
--       shadow_rule, promote_shadow_rule and drop_shadow_rule; a rule
--       deleted takes its shadow with it.
--   shadow_alerts: one row per shadow rule fired per transaction, kept
--       exact like alerts under late arrivals, removals and (for rules that
--       read a merchant's other rows) merchant changes, labels and reviews.
--       A shadow's rows go with it (a trigger on shadow_rules).
--   decisions_decided_at_idx: the transactions stored since a shadow
--       started are those decided since (compare_shadow_rules); BRIN, as
--       decided_at grows with the table, so stores barely pay for it.
--
-- shadow_alerts carries account_id in its key, like alerts (DESIGN, Scale).

CREATE TABLE shadow_rules (
    rule_id text NOT NULL,
    parameters jsonb NOT NULL,
    live_version integer NOT NULL,
    started_at timestamptz NOT NULL,
    started_by text NOT NULL,
    CONSTRAINT shadow_rules_pkey PRIMARY KEY (rule_id),
    CONSTRAINT shadow_rules_rule_id_fkey FOREIGN KEY (rule_id) REFERENCES rules (rule_id)
        ON UPDATE CASCADE ON DELETE CASCADE,
    CONSTRAINT shadow_rules_parameters_check CHECK (jsonb_typeof(parameters) = 'object')
);

COMMENT ON TABLE shadow_rules IS
    'Rules scored on arrival with candidate parameters beside the live ones, into shadow_alerts; one per rule.';
COMMENT ON COLUMN shadow_rules.live_version IS
    'The rule''s version (rule_versions) when the shadow started: what it is compared with.';
COMMENT ON COLUMN shadow_rules.started_at IS
    'Clock time the shadow started (under the rule-change lock): transactions decided since are scored by it.';

CREATE TABLE shadow_alerts (
    account_id bigint NOT NULL,
    ts timestamptz NOT NULL,
    transaction_id bigint NOT NULL,
    rule_id text NOT NULL,
    amount numeric NOT NULL,
    observed numeric,
    threshold numeric,
    reason text NOT NULL,
    raised_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT shadow_alerts_pkey PRIMARY KEY (account_id, ts, transaction_id, rule_id)
);

CREATE INDEX shadow_alerts_rule_idx ON shadow_alerts (rule_id, transaction_id);

COMMENT ON TABLE shadow_alerts IS
    'What the shadow rules fire on stored transactions; read by compare_shadow_rules only, never by is_fraud, decisions or the queue.';

CREATE INDEX decisions_decided_at_idx ON decisions USING brin (decided_at);

GRANT SELECT ON shadow_rules, shadow_alerts TO pgfraud_app, pgfraud_readonly;
