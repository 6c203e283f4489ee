-- _score_shadow_rules(p_rules jsonb, p_account_ids bigint[], p_from_ts timestamptz[],
--                     p_from_transaction_ids bigint[], p_scored_account_ids bigint[],
--                     p_scored_from_ts timestamptz[], p_scored_from_transaction_ids bigint[],
--                     p_base_counts bigint[], p_base_sums numeric[],
--                     p_until_ts timestamptz[] DEFAULT NULL,
--                     p_until_transaction_ids bigint[] DEFAULT NULL,
--                     p_scored_until_ts timestamptz[] DEFAULT NULL,
--                     p_scored_until_transaction_ids bigint[] DEFAULT NULL) -> bigint
--
-- Shadow rules (issue 18): called by _rescore_accounts, after the live
-- alerts, with the shadow rules' parameters p_rules ({rule_id: parameters},
-- shadow_rules) and the same arguments as the live scoring: the changed
-- accounts and positions (p_account_ids ...), and those of them that still
-- have rows with their base totals (p_scored_...), and the bounds of each
-- (p_until_..., p_scored_until_...: NULL, to the end). Makes each account's
-- shadow_alerts from its position on (up to its bound) exactly
-- the rule code's result (_evaluate_from) for the shadow rules: rows that no
-- longer fire are deleted, new ones inserted, changed ones updated. Nothing
-- is notified and nothing that decides reads shadow_alerts. Cost: one more
-- pass of the rule code over the rows the statement scores, with the
-- shadow rules only (a rule that is not in p_rules costs nothing), and an
-- index probe per account for the delete. Returns the number of shadow
-- alerts written (inserted or changed). Raises nothing of its own.
CREATE OR REPLACE FUNCTION _score_shadow_rules(
    p_rules jsonb,
    p_account_ids bigint[],
    p_from_ts timestamptz[],
    p_from_transaction_ids bigint[],
    p_scored_account_ids bigint[],
    p_scored_from_ts timestamptz[],
    p_scored_from_transaction_ids bigint[],
    p_base_counts bigint[],
    p_base_sums numeric[],
    p_until_ts timestamptz[] DEFAULT NULL,
    p_until_transaction_ids bigint[] DEFAULT NULL,
    p_scored_until_ts timestamptz[] DEFAULT NULL,
    p_scored_until_transaction_ids bigint[] DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = public, pg_temp
AS $$
DECLARE
    v_written bigint;
BEGIN
    IF coalesce(cardinality(p_account_ids), 0) = 0 THEN
        RETURN 0;
    END IF;
    WITH computed AS MATERIALIZED (
        SELECT e.*
        FROM _evaluate_from(p_rules, p_scored_account_ids, p_scored_from_ts,
                            p_scored_from_transaction_ids, p_base_counts, p_base_sums,
                            p_scored_until_ts, p_scored_until_transaction_ids) AS e
    ),
    removed AS (
        DELETE FROM shadow_alerts AS sa
        USING unnest(p_account_ids, p_from_ts, p_from_transaction_ids, p_until_ts,
                     p_until_transaction_ids)
            AS s(account_id, from_ts, from_transaction_id, until_ts, until_transaction_id)
        WHERE sa.account_id = s.account_id
          AND (sa.ts, sa.transaction_id) >= (s.from_ts, s.from_transaction_id)
          AND (s.until_ts IS NULL
               OR (sa.ts, sa.transaction_id) <= (s.until_ts, s.until_transaction_id))
          AND NOT EXISTS (
              SELECT FROM computed AS c
              WHERE c.transaction_id = sa.transaction_id
                AND c.rule_id = sa.rule_id
                AND c.ts = sa.ts
          )
    ),
    upserted AS (
        INSERT INTO shadow_alerts AS sa (account_id, ts, transaction_id, rule_id, amount,
                                         observed, threshold, reason)
        SELECT c.account_id, c.ts, c.transaction_id, c.rule_id, c.amount, c.observed,
               c.threshold, c.reason
        FROM computed AS c
        ON CONFLICT ON CONSTRAINT shadow_alerts_pkey DO UPDATE
        SET amount = excluded.amount,
            observed = excluded.observed,
            threshold = excluded.threshold,
            reason = excluded.reason
        WHERE (sa.amount, sa.observed, sa.threshold, sa.reason)
              IS DISTINCT FROM
              (excluded.amount, excluded.observed, excluded.threshold, excluded.reason)
        RETURNING 1
    )
    SELECT count(*) INTO v_written FROM upserted;
    RETURN v_written;
END;
$$;

COMMENT ON FUNCTION _score_shadow_rules(jsonb, bigint[], timestamptz[], bigint[], bigint[], timestamptz[], bigint[], bigint[], numeric[], timestamptz[], bigint[], timestamptz[], bigint[]) IS
    'Scoring on arrival, shadow rules: makes each account''s shadow_alerts from the given position on equal the rule code''s result for the shadow parameters; returns how many were written.';

REVOKE ALL ON FUNCTION _score_shadow_rules(jsonb, bigint[], timestamptz[], bigint[], bigint[], timestamptz[], bigint[], bigint[], numeric[], timestamptz[], bigint[], timestamptz[], bigint[]) FROM PUBLIC;
