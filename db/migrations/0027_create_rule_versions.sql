-- 0027: rule versions (issue 18, part 3).
--
--   rule_versions: every state a rule has been in (enabled, parameters,
--       expression, description), numbered 1, 2, ... per rule, appended by a
--       trigger on rules (_record_rule_version) whenever a statement changes
--       a rule's enabled flag, parameters or expression (set_rule, add_rule,
--       PATCH /rules, psql alike), with who (current_actor()) and when.
--       Never updated or deleted by pgfraud: a deleted rule keeps its
--       history, and a rule added again under the same id continues its
--       numbering.
--   alerts.rule_version: the version of the rule whose parameters produced
--       the alert as it stands (its observed value, threshold and reason):
--       alerts are the current view, so the re-scoring after a rule change
--       moves an alert that still fires to the new version;
--   alerts.raised_rule_version: the version in force when the alert was
--       first raised, never rewritten, so an alert is explainable after the
--       rule changed. Alerts stored before this migration are the live
--       rules' result: both 1, the rules' state now (a fast default: no
--       rewrite of alerts).
--
-- A rule's score is not part of its version: it lives in the decision
-- policy (decision_policies, versioned there), which decisions name by
-- policy_id.

CREATE TABLE rule_versions (
    rule_id text NOT NULL,
    version integer NOT NULL,
    enabled boolean NOT NULL,
    parameters jsonb NOT NULL,
    expression text,
    description text NOT NULL,
    valid_from timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor text NOT NULL,
    CONSTRAINT rule_versions_pkey PRIMARY KEY (rule_id, version),
    CONSTRAINT rule_versions_version_check CHECK (version >= 1)
);

COMMENT ON TABLE rule_versions IS
    'Every state of every rule (enabled, parameters, expression), numbered per rule, appended by a trigger on rules with the actor and the time; alerts name the version that produced them.';
COMMENT ON COLUMN rule_versions.valid_from IS 'When the rule took this state (clock time of the change).';
COMMENT ON COLUMN rule_versions.actor IS 'Who made the change (current_actor(): pgfraud.actor, else the login).';

-- The rules as they are now: version 1, made by whoever migrates.
INSERT INTO rule_versions (rule_id, version, enabled, parameters, expression, description, actor)
SELECT r.rule_id, 1, r.enabled, r.parameters, r.expression, r.description,
       coalesce(nullif(current_setting('pgfraud.actor', true), ''), session_user::text)
FROM rules AS r;

ALTER TABLE alerts
    ADD COLUMN rule_version integer NOT NULL DEFAULT 1,
    ADD COLUMN raised_rule_version integer NOT NULL DEFAULT 1;
ALTER TABLE alerts
    ALTER COLUMN rule_version DROP DEFAULT,
    ALTER COLUMN raised_rule_version DROP DEFAULT;
COMMENT ON COLUMN alerts.rule_version IS
    'The version of the rule (rule_versions) whose parameters produced this alert as it is now (re-scoring after a rule change moves it to the new version).';
COMMENT ON COLUMN alerts.raised_rule_version IS
    'The version of the rule in force when this alert was first raised; never rewritten.';

GRANT SELECT ON rule_versions TO pgfraud_app, pgfraud_readonly;

-- get_alerts gains columns (the versions); its file re-creates it.
DROP FUNCTION IF EXISTS get_alerts(bigint, text, text, timestamptz, timestamptz, bigint, integer, text, timestamptz);
