-- rescore_on_label_change() -> trigger
--
-- Statement-level triggers on fraud_labels and reviews: compromised_merchant
-- counts known fraud (labels, and reviews overruling them), so a label
-- added, changed or removed, or a review recorded, changes what the later
-- rows at that transaction's merchant read. They are re-scored
-- (_rescore_merchant_rows), so alerts stay equal to evaluate_account from
-- scratch. A label of a transaction not stored (yet) re-scores nothing: the
-- transaction's own arrival reads it. TRUNCATE of fraud_labels or reviews re-scores
-- compromised_merchant over everything (rescore_rules). Does nothing while compromised_merchant is off.
-- SECURITY DEFINER, fixed search_path: the writer may not write alerts.
CREATE OR REPLACE FUNCTION rescore_on_label_change()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_changed text;
    v_merchant_ids bigint[];
    v_after_ts timestamptz[];
BEGIN
    -- The shared side of the rule-change lock first: a transaction switching
    -- compromised_merchant on holds the exclusive side until it commits, so
    -- the check below then sees the rule on (READ COMMITTED: a fresh
    -- snapshot per statement) and this change is scored.
    PERFORM pg_advisory_xact_lock_shared(7231546390112208);
    IF NOT EXISTS (SELECT FROM rules AS r WHERE r.rule_id = 'compromised_merchant' AND r.enabled) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM rescore_rules(ARRAY['compromised_merchant']);
        RETURN NULL;
    END IF;
    v_changed := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT n.transaction_id FROM new_rows AS n'
        WHEN 'DELETE' THEN 'SELECT o.transaction_id FROM old_rows AS o'
        ELSE 'SELECT o.transaction_id FROM old_rows AS o'
             ' UNION ALL SELECT n.transaction_id FROM new_rows AS n'
    END;
    EXECUTE format($query$
        WITH changed AS (%s)
        SELECT array_agg(m.merchant_id), array_agg(m.after_ts)
        FROM (
            SELECT t.merchant_id, min(t.ts) AS after_ts
            FROM changed AS c
            JOIN transactions AS t ON t.transaction_id = c.transaction_id
            WHERE t.merchant_id IS NOT NULL
            GROUP BY t.merchant_id
        ) AS m
    $query$, v_changed)
    INTO v_merchant_ids, v_after_ts;
    PERFORM _rescore_merchant_rows(v_merchant_ids, v_after_ts);
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION rescore_on_label_change() IS
    'Trigger: re-scores the rows at the merchants of transactions whose label or review changed (compromised_merchant reads them).';

REVOKE ALL ON FUNCTION rescore_on_label_change() FROM PUBLIC;

CREATE OR REPLACE TRIGGER fraud_labels_rescore_inserted
    AFTER INSERT ON fraud_labels
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rescore_on_label_change();

CREATE OR REPLACE TRIGGER fraud_labels_rescore_deleted
    AFTER DELETE ON fraud_labels
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rescore_on_label_change();

CREATE OR REPLACE TRIGGER fraud_labels_rescore_updated
    AFTER UPDATE ON fraud_labels
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rescore_on_label_change();

CREATE OR REPLACE TRIGGER fraud_labels_rescore_truncated
    AFTER TRUNCATE ON fraud_labels
    FOR EACH STATEMENT EXECUTE FUNCTION rescore_on_label_change();

CREATE OR REPLACE TRIGGER reviews_rescore_inserted
    AFTER INSERT ON reviews
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rescore_on_label_change();

-- Reviews are recorded by review_transaction (INSERT); the owner may still
-- change or remove them in psql, and the known fraud changes with them.
CREATE OR REPLACE TRIGGER reviews_rescore_deleted
    AFTER DELETE ON reviews
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rescore_on_label_change();

CREATE OR REPLACE TRIGGER reviews_rescore_updated
    AFTER UPDATE ON reviews
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rescore_on_label_change();

CREATE OR REPLACE TRIGGER reviews_rescore_truncated
    AFTER TRUNCATE ON reviews
    FOR EACH STATEMENT EXECUTE FUNCTION rescore_on_label_change();
