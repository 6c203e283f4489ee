-- 0101: a case can be closed as withdrawn.
--
-- A rule switched on and off again (or a threshold raised) re-scores away
-- alerts that had opened cases, and such a case can end up holding only
-- alerts no longer raised (alerts_raised 0). Closing it as not_fraud
-- reviewed its transactions as false_positive, labels no one had judged,
-- which `pgfraud evaluate` and `pgfraud tune` then count. `withdrawn`
-- closes a case none of whose alerts is raised any more without reviewing
-- anything (close_case refuses it while one is raised), and an alert of a
-- withdrawn case that a later re-score raises again joins the account's
-- open case (open_cases, _open_account_cases): nobody has looked at it.
-- docs/cases.md, "The rules of a case".

ALTER TABLE cases DROP CONSTRAINT cases_resolution_check;
ALTER TABLE cases ADD CONSTRAINT cases_resolution_check
    CHECK (resolution IN ('fraud', 'not_fraud', 'withdrawn'));

COMMENT ON TABLE cases IS
    'An account''s open alerts as one case: open, assigned, or closed with a resolution (fraud, not_fraud: its transactions reviewed; withdrawn: none of its alerts raised any more, nothing reviewed).';
