-- count_alerts(p_account_id bigint, p_rule_id text, p_review_status text,
--              p_from timestamptz, p_to timestamptz, p_outcome text) -> bigint
--
-- How many alerts get_alerts would list over all its pages with the same
-- filters (each NULL for any): the account; the rule; the review status of
-- the alert's transaction (its latest review; 'unreviewed' when none); the
-- transaction time in [p_from, p_to); the outcome of the transaction's
-- decision (approve, review, decline). The queue shows it as its total.
-- Errors: PF001 (invalid_input) for an unknown review status or outcome,
-- or a rule id that is not a rule.
CREATE OR REPLACE FUNCTION count_alerts(
    p_account_id bigint DEFAULT NULL,
    p_rule_id text DEFAULT NULL,
    p_review_status text DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_outcome text DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_count bigint;
BEGIN
    IF p_review_status IS NOT NULL
       AND p_review_status NOT IN ('unreviewed', 'confirmed_fraud', 'false_positive') THEN
        RAISE EXCEPTION 'review_status must be unreviewed, confirmed_fraud or false_positive'
            USING ERRCODE = 'PF001', COLUMN = 'review_status';
    END IF;
    IF p_outcome IS NOT NULL AND p_outcome NOT IN ('approve', 'review', 'decline') THEN
        RAISE EXCEPTION 'outcome must be approve, review or decline'
            USING ERRCODE = 'PF001', COLUMN = 'outcome';
    END IF;
    IF p_rule_id IS NOT NULL AND NOT EXISTS (SELECT FROM rules AS ru WHERE ru.rule_id = p_rule_id) THEN
        RAISE EXCEPTION 'unknown rule %; the rules are %', p_rule_id,
              (SELECT string_agg(ru.rule_id, ', ' ORDER BY ru.rule_id) FROM rules AS ru)
            USING ERRCODE = 'PF001', COLUMN = 'rule_id';
    END IF;
    SELECT count(*) INTO v_count
    FROM alerts AS al
    WHERE (p_account_id IS NULL OR al.account_id = p_account_id)
      AND (p_rule_id IS NULL OR al.rule_id = p_rule_id)
      AND (p_from IS NULL OR al.ts >= p_from)
      AND (p_to IS NULL OR al.ts < p_to)
      AND (p_review_status IS NULL OR coalesce((
              SELECT rv.status
              FROM reviews AS rv
              WHERE rv.account_id = al.account_id AND rv.transaction_id = al.transaction_id
              ORDER BY rv.review_id DESC
              LIMIT 1
          ), 'unreviewed') = p_review_status)
      AND (p_outcome IS NULL OR EXISTS (
              SELECT FROM decisions AS d
              WHERE d.account_id = al.account_id AND d.transaction_id = al.transaction_id
                AND d.outcome = p_outcome));
    RETURN v_count;
END;
$$;

COMMENT ON FUNCTION count_alerts(bigint, text, text, timestamptz, timestamptz, text) IS
    'How many alerts match the queue''s filters (account, rule, review status, transaction time, decision outcome) over all pages; PF001 for an unknown review status, outcome or rule.';

REVOKE ALL ON FUNCTION count_alerts(bigint, text, text, timestamptz, timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION count_alerts(bigint, text, text, timestamptz, timestamptz, text)
    TO pgfraud_app, pgfraud_readonly;
