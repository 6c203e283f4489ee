-- _record_account_decisions(p_account_id bigint, p_transaction_ids bigint[]) -> bigint
--
-- The per-account path's decision writer (issue 19): what
-- _record_decisions(array_fill(p_account_id, ...), p_transaction_ids) does
-- (one decision per listed transaction of the account that has none, made
-- now from its alerts, the policy and the lists in force; never rewritten),
-- by the same query: the text of _record_decisions' INSERT, taken from
-- pg_proc and rewritten so that every read of a per-account table names
-- account_id = $1 (its starting set, an unnest of two arrays joined to
-- transactions, becomes the account's rows with those ids), run with
-- EXECUTE ... USING (planned for the call, no forced generic plan). So Citus
-- routes it to the account's shard. store_account_transactions and
-- score_account call it.
-- Returns the number of decisions written. Errors: internal_error (XX000)
-- when _record_decisions' text no longer has the shape this rewrites.
CREATE OR REPLACE FUNCTION _record_account_decisions(p_account_id bigint,
                                                     p_transaction_ids bigint[])
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = public, pg_temp
AS $$
DECLARE
    v_source text;
    v_query text;
    v_at timestamptz;
    v_policy decision_policies;
    v_rule_set_id text;
    v_count bigint;
BEGIN
    IF coalesce(cardinality(p_transaction_ids), 0) = 0 THEN
        RETURN 0;
    END IF;
    SELECT p.prosrc INTO v_source
    FROM pg_proc AS p
    WHERE p.oid = '_record_decisions(bigint[], bigint[])'::regprocedure;
    -- The statement from its WITH to its ON CONFLICT.
    v_query := substring(v_source FROM '(\n    WITH judged AS \(.*ON CONFLICT ON CONSTRAINT decisions_pkey DO NOTHING);');
    v_query := regexp_replace(
        v_query,
        '\n        FROM unnest\(p_account_ids, p_transaction_ids\) AS u\(account_id, transaction_id\)\n        JOIN transactions AS t\n          ON t\.transaction_id = u\.transaction_id AND t\.account_id = u\.account_id\n',
        E'\n        FROM transactions AS t\n        WHERE t.account_id = $1 AND t.transaction_id = ANY ($2)\n');
    v_query := regexp_replace(v_query, '\m([a-z]+)\.account_id = [a-z]+\.account_id\M',
                              '\1.account_id = $1', 'g');
    v_query := regexp_replace(v_query, '\mv_policy\.', '($3).', 'g');
    v_query := regexp_replace(v_query, '\mv_at\M', '$4', 'g');
    v_query := regexp_replace(v_query, '\mv_rule_set_id\M', '$5', 'g');
    IF v_query IS NULL OR v_query ~ '\m(p_account_ids|p_transaction_ids|v_[a-z_]+)\M'
       OR v_query !~ 'WHERE t\.account_id = \$1 AND t\.transaction_id = ANY \(\$2\)' THEN
        RAISE EXCEPTION '_record_decisions no longer has the shape _record_account_decisions rewrites'
            USING ERRCODE = 'XX000',
                  HINT = 'update db/functions/_record_account_decisions.sql with _record_decisions.sql';
    END IF;
    -- What _record_decisions reads before its statement, in the same order.
    PERFORM pg_advisory_xact_lock_shared(7231546390112208);
    v_at := clock_timestamp();
    SELECT p.* INTO v_policy
    FROM decision_policies AS p
    WHERE p.effective_from <= v_at
    ORDER BY p.effective_from DESC, p.policy_id DESC
    LIMIT 1;
    v_rule_set_id := md5(active_rule_parameters()::text);
    EXECUTE v_query USING p_account_id, p_transaction_ids, v_policy, v_at, v_rule_set_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;

COMMENT ON FUNCTION _record_account_decisions(bigint, bigint[]) IS
    'Per-account path: one decision per listed transaction of the account that has none, by _record_decisions'' own query rewritten to name the account (routable on Citus); returns how many; XX000 if _record_decisions changed shape.';

REVOKE ALL ON FUNCTION _record_account_decisions(bigint, bigint[]) FROM PUBLIC;
