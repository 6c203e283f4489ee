-- _known_fraud(p_from timestamptz, p_to timestamptz)
--     -> TABLE (account_id bigint, transaction_id bigint, scenario text)
--
-- The known fraud that backtests measure against (evaluate_rules,
-- evaluate_decisions), among the transactions with time in [p_from, p_to)
-- (NULL: unbounded): a transaction with a stored label (fraud_labels), unless
-- its latest review says false_positive, and every reviewed transaction
-- whose latest review says otherwise (scenario 'reviewed' when it has no
-- label): what is known now, whenever it became known. One row per
-- transaction. On one node a transaction id is unique and labels and reviews
-- are joined on it; on Citus (_is_distributed) they are joined on
-- (account_id, transaction_id), the key there, so each worker answers for its
-- shards. Reads only, with the caller's rights (the service's role may not
-- read fraud_labels; backtest_rules and evaluate_decisions call this as the
-- owner and return counts only). Raises nothing.
CREATE OR REPLACE FUNCTION _known_fraud(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (account_id bigint, transaction_id bigint, scenario text)
LANGUAGE plpgsql
STABLE
SET search_path = public, pg_temp
AS $$
BEGIN
    IF _is_distributed() THEN
        RETURN QUERY
            SELECT t.account_id, t.transaction_id, coalesce(l.scenario, 'reviewed')
            FROM transactions AS t
            LEFT JOIN fraud_labels AS l
              ON l.account_id = t.account_id AND l.transaction_id = t.transaction_id
            LEFT JOIN (
                -- The latest review of each reviewed transaction.
                SELECT DISTINCT ON (rv.account_id, rv.transaction_id)
                       rv.account_id, rv.transaction_id, rv.status
                FROM reviews AS rv
                ORDER BY rv.account_id, rv.transaction_id, rv.review_id DESC
            ) AS d ON d.account_id = t.account_id AND d.transaction_id = t.transaction_id
            WHERE (l.transaction_id IS NOT NULL OR d.transaction_id IS NOT NULL)
              AND d.status IS DISTINCT FROM 'false_positive'
              AND (p_from IS NULL OR t.ts >= p_from)
              AND (p_to IS NULL OR t.ts < p_to);
        RETURN;
    END IF;
    RETURN QUERY
        WITH decisions AS (
            -- The latest review of each reviewed transaction.
            SELECT DISTINCT ON (rv.transaction_id) rv.transaction_id, rv.status
            FROM reviews AS rv
            ORDER BY rv.transaction_id, rv.review_id DESC
        )
        SELECT t.account_id, t.transaction_id, coalesce(l.scenario, 'reviewed')
        FROM fraud_labels AS l
        FULL JOIN decisions AS d ON d.transaction_id = l.transaction_id
        JOIN transactions AS t ON t.transaction_id = coalesce(l.transaction_id, d.transaction_id)
        WHERE d.status IS DISTINCT FROM 'false_positive'
          AND (p_from IS NULL OR t.ts >= p_from)
          AND (p_to IS NULL OR t.ts < p_to);
END;
$$;

COMMENT ON FUNCTION _known_fraud(timestamptz, timestamptz) IS
    'The known fraud in [p_from, p_to) that backtests measure against: labels unless the latest review says false_positive, and reviewed transactions otherwise.';

REVOKE ALL ON FUNCTION _known_fraud(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _known_fraud(timestamptz, timestamptz) TO pgfraud_readonly;
