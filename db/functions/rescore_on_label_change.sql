-- rescore_on_label_change() -> trigger
--
-- Statement-level triggers on fraud_labels and reviews: compromised_merchant
-- and the users' merchant features count known fraud (labels, and reviews
-- overruling them) as known at the judged transaction's time, so a label
-- added, changed or removed, or a review recorded, changes what that
-- transaction's merchant's rows read from when it became known: the label's
-- known_at or the review's reviewed_at (never before the transaction's own
-- time), plus the rules' delay. Those rows, and only those, are re-scored
-- (_rescore_merchant_rows), so alerts stay equal to evaluate_account from
-- scratch and a label or review recorded after a transaction's time never
-- changes that transaction's alerts. Locks, in the order every re-scoring
-- path takes them: the merchants' (_lock_merchants, as a store at the same
-- merchant does), the shared side of the rule-change lock, then the
-- accounts' rows (_rescore_accounts). A label of a transaction not stored
-- (yet) re-scores nothing: the transaction's own arrival reads it. TRUNCATE
-- of fraud_labels or reviews re-scores the rules that read them over
-- everything (rescore_rules), and, when a shadow rule reads them (a shadow
-- of compromised_merchant or of a user's rule reading the merchant
-- features), the shadow alerts of every account from its first row
-- (_score_shadow_rules, under the exclusive rule-change lock; shadow alerts
-- may then appear on rows stored before a shadow started, which
-- compare_shadow_rules does not count). Does nothing while no such rule is
-- on.
-- SECURITY DEFINER, fixed search_path: the writer may not write alerts.
CREATE OR REPLACE FUNCTION rescore_on_label_change()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_shadow_rules jsonb;
    v_account_ids bigint[];
    v_known text;
    v_changed text;
    v_merchant_ids bigint[];
    v_after_ts timestamptz[];
    v_locked boolean := false;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_advisory_xact_lock_shared(7231546390112208);
        PERFORM rescore_rules(ARRAY(
            SELECT r.rule_id FROM rules AS r
            WHERE r.enabled
              AND (r.rule_id = 'compromised_merchant' OR _reads_merchant_features(r.expression))));
        IF EXISTS (SELECT FROM shadow_rules AS s
                   JOIN rules AS r ON r.rule_id = s.rule_id
                   WHERE s.rule_id = 'compromised_merchant'
                      OR _reads_merchant_features(r.expression)) THEN
            -- Every shadow at once (_score_shadow_rules makes an account's
            -- shadow alerts of all shadows equal its result), with no
            -- writer in between (as rescore_rules: the exclusive lock).
            PERFORM pg_advisory_xact_lock(7231546390112208);
            SELECT jsonb_object_agg(s.rule_id, s.parameters) INTO v_shadow_rules
            FROM shadow_rules AS s;
            v_account_ids := ARRAY(SELECT a.account_id FROM account_states AS a
                                   ORDER BY a.account_id);
            PERFORM _score_shadow_rules(
                v_shadow_rules, v_account_ids,
                array_fill('-infinity'::timestamptz, ARRAY[cardinality(v_account_ids)]),
                array_fill(0::bigint, ARRAY[cardinality(v_account_ids)]),
                v_account_ids,
                array_fill('-infinity'::timestamptz, ARRAY[cardinality(v_account_ids)]),
                array_fill(0::bigint, ARRAY[cardinality(v_account_ids)]),
                array_fill(0::bigint, ARRAY[cardinality(v_account_ids)]),
                array_fill(0::numeric, ARRAY[cardinality(v_account_ids)]));
        END IF;
        RETURN NULL;
    END IF;
    -- When the change became known: a label's known_at, a review's reviewed_at.
    v_known := CASE TG_TABLE_NAME WHEN 'reviews' THEN 'reviewed_at' ELSE 'known_at' END;
    v_changed := CASE TG_OP
        WHEN 'INSERT' THEN format('SELECT n.transaction_id, n.%I AS known_at FROM new_rows AS n', v_known)
        WHEN 'DELETE' THEN format('SELECT o.transaction_id, o.%I AS known_at FROM old_rows AS o', v_known)
        ELSE format('SELECT o.transaction_id, o.%1$I AS known_at FROM old_rows AS o'
                    ' UNION ALL SELECT n.transaction_id, n.%1$I FROM new_rows AS n', v_known)
    END;
    EXECUTE format($query$
        WITH changed AS (%s)
        SELECT array_agg(m.merchant_id), array_agg(v.after_ts)
        FROM (
            SELECT t.merchant_id, min(greatest(t.ts, c.known_at)) AS first_ts,
                   max(greatest(t.ts, c.known_at)) AS last_ts
            FROM changed AS c
            JOIN transactions AS t ON t.transaction_id = c.transaction_id
            WHERE t.merchant_id IS NOT NULL
            GROUP BY t.merchant_id
        ) AS m
        -- Both ends: rows read a change from its time plus the delay until
        -- its time plus the reach (_merchant_neighbour_positions).
        CROSS JOIN LATERAL (VALUES (m.first_ts), (m.last_ts)) AS v(after_ts)
    $query$, v_changed)
    INTO v_merchant_ids, v_after_ts;
    IF v_merchant_ids IS NULL THEN
        RETURN NULL;
    END IF;
    IF _merchant_rules_delay() IS NOT NULL THEN
        PERFORM _lock_merchants(v_merchant_ids);
        v_locked := true;
    END IF;
    -- The shared side of the rule-change lock: a transaction switching such
    -- a rule on holds the exclusive side until it commits, so the check
    -- below then sees the rule on (READ COMMITTED: a fresh snapshot per
    -- statement) and this change is scored.
    PERFORM pg_advisory_xact_lock_shared(7231546390112208);
    IF _merchant_rules_delay() IS NULL THEN
        RETURN NULL;
    END IF;
    IF NOT v_locked THEN
        -- Switched on meanwhile (rare): the merchants' locks after all.
        PERFORM _lock_merchants(v_merchant_ids);
    END IF;
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
