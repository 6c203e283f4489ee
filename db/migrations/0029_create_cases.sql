-- 0029: cases group an account's open alerts (issue 18, part 5).
--
--   cases: one row per case: open, assigned (to someone) or closed with a
--       resolution (fraud, not_fraud) and a note. An account has at most one
--       case that is not closed (cases_open_account_key).
--   case_alerts: which alerts a case holds, by (transaction_id, rule_id):
--       alert rows are re-written by re-scoring (a rule change deletes and
--       inserts them again), so a case names the alert by what it is, not by
--       its alert_id. An alert belongs to at most one case
--       (case_alerts_pkey): the first that held it.
--
-- Both are written in the database transaction that writes the alerts, by
-- the statement-level trigger on alerts (db/functions/open_cases.sql), and
-- by the case functions (assign_case, close_case). account_id leads every
-- key, ready for distribution by account_id (DESIGN, Scale); case_id comes
-- from an identity and is looked up through cases_case_idx (a unique index
-- without account_id could not be kept on a distributed table).

CREATE TABLE cases (
    account_id bigint NOT NULL,
    case_id bigint GENERATED ALWAYS AS IDENTITY,
    status text NOT NULL DEFAULT 'open',
    assignee text,
    assigned_by text,
    assigned_at timestamptz,
    resolution text,
    note text NOT NULL DEFAULT '',
    opened_at timestamptz NOT NULL DEFAULT now(),
    closed_at timestamptz,
    closed_by text,
    CONSTRAINT cases_pkey PRIMARY KEY (account_id, case_id),
    CONSTRAINT cases_status_check CHECK (status IN ('open', 'assigned', 'closed')),
    CONSTRAINT cases_resolution_check CHECK (resolution IN ('fraud', 'not_fraud')),
    CONSTRAINT cases_assignee_check CHECK (length(assignee) BETWEEN 1 AND 200),
    CONSTRAINT cases_assigned_check CHECK (status <> 'assigned' OR assignee IS NOT NULL),
    CONSTRAINT cases_closed_check CHECK (
        (status = 'closed') = (resolution IS NOT NULL AND closed_at IS NOT NULL AND closed_by IS NOT NULL)),
    CONSTRAINT cases_note_check CHECK (length(note) <= 2000)
);

CREATE INDEX cases_case_idx ON cases (case_id);
-- One case that is not closed per account: the trigger's target.
CREATE UNIQUE INDEX cases_open_account_key ON cases (account_id) WHERE status <> 'closed';
CREATE INDEX cases_status_idx ON cases (status, case_id);
CREATE INDEX cases_assignee_idx ON cases (assignee, case_id);

COMMENT ON TABLE cases IS
    'An account''s open alerts as one case: open, assigned, or closed with a resolution (fraud, not_fraud); closing reviews its transactions.';
COMMENT ON COLUMN cases.assigned_by IS 'Who assigned it (current_actor()).';
COMMENT ON COLUMN cases.closed_by IS 'Who closed it (current_actor()); also the reviewer of its reviews.';

CREATE TABLE case_alerts (
    account_id bigint NOT NULL,
    transaction_id bigint NOT NULL,
    rule_id text NOT NULL,
    case_id bigint NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT case_alerts_pkey PRIMARY KEY (account_id, transaction_id, rule_id),
    CONSTRAINT case_alerts_case_fkey FOREIGN KEY (account_id, case_id)
        REFERENCES cases (account_id, case_id)
);

CREATE INDEX case_alerts_case_idx ON case_alerts (account_id, case_id, transaction_id);

COMMENT ON TABLE case_alerts IS
    'The alerts (transaction_id, rule_id) each case holds; an alert belongs to the first case that held it.';

-- Alerts stored before this migration: an account's alerts form one case,
-- open when any of their transactions has no review yet, otherwise closed
-- by the migration with the resolution its reviews give (fraud when any
-- latest review confirms fraud), so a later re-score of those alerts opens
-- no case for decisions already made.
WITH latest AS (
    SELECT DISTINCT ON (r.transaction_id) r.transaction_id, r.status
    FROM reviews AS r
    ORDER BY r.transaction_id, r.review_id DESC
),
accounts AS (
    SELECT al.account_id,
           bool_and(l.status IS NOT NULL) AS reviewed,
           bool_or(l.status = 'confirmed_fraud') AS fraud
    FROM alerts AS al
    LEFT JOIN latest AS l ON l.transaction_id = al.transaction_id
    GROUP BY al.account_id
)
INSERT INTO cases (account_id, status, resolution, note, closed_at, closed_by)
SELECT a.account_id,
       CASE WHEN a.reviewed THEN 'closed' ELSE 'open' END,
       CASE WHEN a.reviewed THEN CASE WHEN a.fraud THEN 'fraud' ELSE 'not_fraud' END END,
       CASE WHEN a.reviewed THEN 'closed by migration 0029: every alert was already reviewed' ELSE '' END,
       CASE WHEN a.reviewed THEN now() END,
       CASE WHEN a.reviewed THEN 'pgfraud migrate' END
FROM accounts AS a
ORDER BY a.account_id;

INSERT INTO case_alerts (account_id, transaction_id, rule_id, case_id)
SELECT DISTINCT al.account_id, al.transaction_id, al.rule_id, c.case_id
FROM alerts AS al
JOIN cases AS c ON c.account_id = al.account_id;

-- Written only by SECURITY DEFINER functions (the trigger, assign_case,
-- close_case).
GRANT SELECT ON cases, case_alerts TO pgfraud_app, pgfraud_readonly;
