-- 0016: labels and reviews carry when they became known (known_at).
--
-- A rule that reads labels or reviews (compromised_merchant, and the users'
-- merchant features) sees, for a transaction at time ts, only what was known
-- before ts (its delay parameter on top), so a label loaded or a review
-- entered today never changes how an earlier transaction was judged.
--
-- fraud_labels.known_at: given by the labels file (a known_at column), else
--     the time the label was stored (now(), the default). Refused by the
--     loaders when before its transaction's time.
-- reviews: a review's known time is its reviewed_at (the time it was
--     recorded, now()); no second column.
--
-- Existing labels: their stored time was never recorded. A label whose
-- transaction is stored gets that transaction's time, which is exactly how
-- compromised_merchant read it until now (fraud known delay_days after it
-- happened), so today's verdicts stay as they are. A label of a transaction
-- not stored gets the time of this migration (known from now on).
-- Existing reviews keep their reviewed_at as their known time: a review
-- entered after the transactions it would have changed no longer changes
-- them (migrate re-scores the stored history after this migration).

ALTER TABLE fraud_labels ADD COLUMN known_at timestamptz;

UPDATE fraud_labels AS l
SET known_at = t.ts
FROM transactions AS t
WHERE t.transaction_id = l.transaction_id;

UPDATE fraud_labels SET known_at = now() WHERE known_at IS NULL;

ALTER TABLE fraud_labels
    ALTER COLUMN known_at SET DEFAULT now(),
    ALTER COLUMN known_at SET NOT NULL;

COMMENT ON COLUMN fraud_labels.known_at IS
    'When the label became known (from the labels file, else when stored); rules count it only for transactions after it.';
COMMENT ON COLUMN reviews.reviewed_at IS
    'When the review was recorded: also when its decision became known (its known_at for the rules).';
