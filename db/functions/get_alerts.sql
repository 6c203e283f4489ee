-- get_alerts(p_account_id bigint, p_rule_id text, p_review_status text,
--            p_from timestamptz, p_to timestamptz, p_before_alert_id bigint,
--            p_limit integer, p_order text, p_before_ts timestamptz,
--            p_outcome text)
--     -> TABLE (alert_id, transaction_id, account_id, ts, amount, rule_id,
--               observed, threshold, reason, parameters, raised_at,
--               review_status, review_note, reviewer, reviewed_at,
--               rule_version, raised_rule_version, raised_parameters,
--               outcome, overruled)
--
-- The alert queue, at most p_limit (1..10000) rows, in one of two orders:
-- p_order 'raised' (the default): newest raised first (descending alert_id),
-- with alert_id < p_before_alert_id (NULL: from the newest; p_before_ts is
-- ignored); 'time': newest transaction first (descending ts, then
-- alert_id), rows with (ts, alert_id) below the cursor (p_before_ts,
-- p_before_alert_id); p_before_ts NULL: that alert's own ts (PF007 when no
-- alert has that id: one that never existed or that a re-score removed);
-- both NULL: from the newest. Filters, each NULL for any: the account; the
-- rule; the review status of the alert's transaction ('unreviewed',
-- 'confirmed_fraud', 'false_positive': its latest review); the transaction
-- time in [p_from, p_to). Each row carries its transaction's latest review,
-- and (issue 18) the version of its rule that produced it as it is now
-- (rule_version, whose parameters are `parameters`), the version in force
-- when it was first raised (raised_rule_version) and that version's
-- parameters (raised_parameters, from rule_versions: one index probe per
-- row returned).
-- The rows also carry the outcome of the transaction's decision ('approve',
-- 'review', 'decline'; issue 17) and whether a list overruled the score (both
-- NULL for a transaction stored before decisions existed); p_outcome filters on it.
-- On Citus (_is_distributed) each node numbers alerts from its own range, so
-- 'raised' is newest raise first by (raised_at, alert_id) there, raised_at
-- being the start of the raising database transaction, and p_before_alert_id
-- a cursor read as that alert's (raised_at, alert_id) (PF007 when no alert
-- has that id).
-- Errors: PF001 (invalid_input) for a limit out of range, an unknown review
-- status, order or outcome, or a rule id that is not a rule, naming the field;
-- PF007 (alert_not_found, COLUMN before) for a time-order cursor that is a
-- bare alert_id no alert has (any more).
CREATE OR REPLACE FUNCTION get_alerts(
    p_account_id bigint DEFAULT NULL,
    p_rule_id text DEFAULT NULL,
    p_review_status text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_before_alert_id bigint DEFAULT NULL,
    p_limit integer DEFAULT 100,
    p_order text DEFAULT 'raised',
    p_before_ts timestamptz DEFAULT NULL,
    p_outcome text DEFAULT NULL
)
RETURNS TABLE (
    alert_id bigint,
    transaction_id bigint,
    account_id bigint,
    ts timestamptz,
    amount numeric,
    rule_id text,
    observed numeric,
    threshold numeric,
    reason text,
    parameters jsonb,
    raised_at timestamptz,
    review_status text,
    review_note text,
    reviewer text,
    reviewed_at timestamptz,
    rule_version integer,
    raised_rule_version integer,
    raised_parameters jsonb,
    outcome text,
    overruled boolean
)
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_before_ts timestamptz;
    v_before_raised timestamptz;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 10000' USING ERRCODE = 'PF001', COLUMN = 'limit';
    END IF;
    IF p_review_status IS NOT NULL
       AND p_review_status NOT IN ('unreviewed', 'confirmed_fraud', 'false_positive') THEN
        RAISE EXCEPTION 'review_status must be unreviewed, confirmed_fraud or false_positive'
            USING ERRCODE = 'PF001', COLUMN = 'review_status';
    END IF;
    -- A misspelt rule id is an error, not an empty queue.
    IF p_rule_id IS NOT NULL AND NOT EXISTS (SELECT FROM rules AS ru WHERE ru.rule_id = p_rule_id) THEN
        RAISE EXCEPTION 'unknown rule %; the rules are %', p_rule_id,
              (SELECT string_agg(ru.rule_id, ', ' ORDER BY ru.rule_id) FROM rules AS ru)
            USING ERRCODE = 'PF001', COLUMN = 'rule_id';
    END IF;
    IF p_outcome IS NOT NULL AND p_outcome NOT IN ('approve', 'review', 'decline') THEN
        RAISE EXCEPTION 'outcome must be approve, review or decline'
            USING ERRCODE = 'PF001', COLUMN = 'outcome';
    END IF;
    IF p_order IS NULL OR p_order NOT IN ('raised', 'time') THEN
        RAISE EXCEPTION 'order must be raised or time' USING ERRCODE = 'PF001', COLUMN = 'order';
    END IF;
    IF p_order = 'time' THEN
        v_before_ts := p_before_ts;
        IF v_before_ts IS NULL AND p_before_alert_id IS NOT NULL THEN
            SELECT al.ts INTO v_before_ts FROM alerts AS al WHERE al.alert_id = p_before_alert_id;
            IF v_before_ts IS NULL THEN  -- no such alert (any more): its place is unknown
                RAISE EXCEPTION 'there is no alert % (it never existed, or a re-score removed it)',
                    p_before_alert_id
                    USING ERRCODE = 'PF007', COLUMN = 'before',
                          HINT = 'start again without before, or use the <epoch ms>.<alert_id> cursor of next';
            END IF;
        END IF;
        RETURN QUERY
            SELECT al.alert_id, al.transaction_id, al.account_id, al.ts, al.amount,
                   al.rule_id, al.observed, al.threshold, al.reason, al.parameters,
                   al.raised_at, coalesce(r.status, 'unreviewed'), r.note, r.reviewer,
                   r.reviewed_at, al.rule_version, al.raised_rule_version,
                   (SELECT rv.parameters FROM rule_versions AS rv
                    WHERE rv.rule_id = al.rule_id AND rv.version = al.raised_rule_version),
                   d.outcome, d.outcome <> d.score_outcome
            FROM alerts AS al
            LEFT JOIN LATERAL (
                SELECT rv.status, rv.note, rv.reviewer, rv.reviewed_at
                FROM reviews AS rv
                WHERE rv.account_id = al.account_id AND rv.transaction_id = al.transaction_id
                ORDER BY rv.review_id DESC
                LIMIT 1
            ) AS r ON true
            LEFT JOIN decisions AS d
              ON d.account_id = al.account_id AND d.transaction_id = al.transaction_id
            WHERE (p_account_id IS NULL OR al.account_id = p_account_id)
              AND (p_rule_id IS NULL OR al.rule_id = p_rule_id)
              AND (p_from IS NULL OR al.ts >= p_from)
              AND (p_to IS NULL OR al.ts < p_to)
              AND (v_before_ts IS NULL OR (al.ts, al.alert_id) < (v_before_ts, p_before_alert_id))
              AND (p_review_status IS NULL OR coalesce(r.status, 'unreviewed') = p_review_status)
              AND (p_outcome IS NULL OR d.outcome = p_outcome)
            ORDER BY al.ts DESC, al.alert_id DESC
            LIMIT p_limit;
        RETURN;
    END IF;
    IF _is_distributed() THEN
        IF p_before_alert_id IS NOT NULL THEN
            SELECT al.raised_at INTO v_before_raised FROM alerts AS al
            WHERE al.alert_id = p_before_alert_id;
            IF v_before_raised IS NULL THEN  -- no such alert (any more): its place is unknown
                RAISE EXCEPTION 'there is no alert % (it never existed, or a re-score removed it)',
                    p_before_alert_id
                    USING ERRCODE = 'PF007', COLUMN = 'before',
                          HINT = 'start again without before';
            END IF;
        END IF;
        RETURN QUERY
            SELECT al.alert_id, al.transaction_id, al.account_id, al.ts, al.amount,
                   al.rule_id, al.observed, al.threshold, al.reason, al.parameters,
                   al.raised_at, coalesce(r.status, 'unreviewed'), r.note, r.reviewer,
                   r.reviewed_at, al.rule_version, al.raised_rule_version,
                   (SELECT rv.parameters FROM rule_versions AS rv
                    WHERE rv.rule_id = al.rule_id AND rv.version = al.raised_rule_version),
                   d.outcome, d.outcome <> d.score_outcome
            FROM alerts AS al
            LEFT JOIN LATERAL (
                SELECT rv.status, rv.note, rv.reviewer, rv.reviewed_at
                FROM reviews AS rv
                WHERE rv.account_id = al.account_id AND rv.transaction_id = al.transaction_id
                ORDER BY rv.review_id DESC
                LIMIT 1
            ) AS r ON true
            LEFT JOIN decisions AS d
              ON d.account_id = al.account_id AND d.transaction_id = al.transaction_id
            WHERE (p_account_id IS NULL OR al.account_id = p_account_id)
              AND (p_rule_id IS NULL OR al.rule_id = p_rule_id)
              AND (p_from IS NULL OR al.ts >= p_from)
              AND (p_to IS NULL OR al.ts < p_to)
              AND (v_before_raised IS NULL
                   OR (al.raised_at, al.alert_id) < (v_before_raised, p_before_alert_id))
              AND (p_review_status IS NULL OR coalesce(r.status, 'unreviewed') = p_review_status)
              AND (p_outcome IS NULL OR d.outcome = p_outcome)
            ORDER BY al.raised_at DESC, al.alert_id DESC
            LIMIT p_limit;
        RETURN;
    END IF;
    RETURN QUERY
        SELECT al.alert_id, al.transaction_id, al.account_id, al.ts, al.amount, al.rule_id,
               al.observed, al.threshold, al.reason, al.parameters, al.raised_at,
               coalesce(r.status, 'unreviewed'), r.note, r.reviewer, r.reviewed_at,
               al.rule_version, al.raised_rule_version,
               (SELECT rv.parameters FROM rule_versions AS rv
                WHERE rv.rule_id = al.rule_id AND rv.version = al.raised_rule_version),
               d.outcome, d.outcome <> d.score_outcome
        FROM alerts AS al
        LEFT JOIN LATERAL (
            SELECT rv.status, rv.note, rv.reviewer, rv.reviewed_at
            FROM reviews AS rv
            WHERE rv.account_id = al.account_id AND rv.transaction_id = al.transaction_id
            ORDER BY rv.review_id DESC
            LIMIT 1
        ) AS r ON true
        LEFT JOIN decisions AS d
          ON d.account_id = al.account_id AND d.transaction_id = al.transaction_id
        WHERE (p_account_id IS NULL OR al.account_id = p_account_id)
          AND (p_rule_id IS NULL OR al.rule_id = p_rule_id)
          AND (p_from IS NULL OR al.ts >= p_from)
          AND (p_to IS NULL OR al.ts < p_to)
          AND (p_before_alert_id IS NULL OR al.alert_id < p_before_alert_id)
          AND (p_review_status IS NULL OR coalesce(r.status, 'unreviewed') = p_review_status)
          AND (p_outcome IS NULL OR d.outcome = p_outcome)
        ORDER BY al.alert_id DESC
        LIMIT p_limit;
END;
$$;

COMMENT ON FUNCTION get_alerts(bigint, text, text, timestamptz, timestamptz, bigint, integer, text, timestamptz, text) IS
    'The alert queue, newest raised first (p_order raised, paged by alert_id) or newest transaction first (time, paged by (ts, alert_id)), filtered by account, rule, review status, transaction time and decision outcome; each row with its review and decision outcome; PF001 for a bad limit, review status, order or outcome; PF007 (alert_not_found) for a time-order cursor that is a bare alert_id no alert has.';

REVOKE ALL ON FUNCTION get_alerts(bigint, text, text, timestamptz, timestamptz, bigint, integer, text, timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_alerts(bigint, text, text, timestamptz, timestamptz, bigint, integer, text, timestamptz, text)
    TO pgfraud_app, pgfraud_readonly;
