-- 0019: rule scores and a decision policy (issue 17).
--
--   decision_policies: versions of the policy, append-only; the version in
--       force at a time is the latest with effective_from at or before it.
--       Each holds the review and decline thresholds and every rule's score
--       (what it adds when it fires; a rule without one scores default_score).
--       A transaction's score is the sum of the scores of the rules that fire
--       on it: decline from decline_threshold, review from review_threshold,
--       approve below.
-- A small shared table (a reference table on Citus), written only by
-- set_decision_policy (SECURITY DEFINER).

CREATE TABLE decision_policies (
    policy_id bigint GENERATED ALWAYS AS IDENTITY,
    review_threshold integer NOT NULL,
    decline_threshold integer NOT NULL,
    default_score integer NOT NULL,
    rule_scores jsonb NOT NULL,
    effective_from timestamptz NOT NULL DEFAULT clock_timestamp(),
    set_by text NOT NULL,
    CONSTRAINT decision_policies_pkey PRIMARY KEY (policy_id),
    CONSTRAINT decision_policies_review_threshold_check
        CHECK (review_threshold BETWEEN 1 AND 1000),
    CONSTRAINT decision_policies_decline_threshold_check
        CHECK (decline_threshold >= review_threshold AND decline_threshold <= 1000),
    CONSTRAINT decision_policies_default_score_check
        CHECK (default_score BETWEEN 0 AND 1000),
    CONSTRAINT decision_policies_rule_scores_check CHECK (jsonb_typeof(rule_scores) = 'object')
);

CREATE INDEX decision_policies_effective_idx ON decision_policies (effective_from, policy_id);

COMMENT ON TABLE decision_policies IS
    'Versions of the decision policy (thresholds and rule scores), append-only; in force: the latest with effective_from <= the time asked.';

-- The defaults, chosen from the per-rule precision of docs/detection.md
-- ("On the realistic mixes": pgfraud evaluate on the realistic mix, seed 42,
-- and the shifted mix, seed 7, 200,000 transactions each). See
-- docs/decisions.md, "Why these defaults".
INSERT INTO decision_policies (review_threshold, decline_threshold, default_score, rule_scores,
                               effective_from, set_by)
VALUES (50, 100, 50,
        '{"velocity": 100, "below_average": 100, "rapid_succession": 50, "large_amount": 50,
          "same_timestamp": 50, "compromised_merchant": 50, "amount_spike": 25,
          "new_merchant_large": 25, "new_merchant_run": 25}',
        '-infinity', 'pgfraud');

GRANT SELECT ON decision_policies TO pgfraud_app, pgfraud_readonly;
