-- _lock_merchants(p_merchant_ids bigint[]) -> bigint
--
-- Takes the transaction-scoped advisory lock of each merchant of
-- p_merchant_ids (NULLs ignored), hashed into 256 buckets (a big load holds
-- at most 256 locks) and taken in bucket order in one statement, so two
-- writers never take them in opposite orders. Every path that changes what
-- the merchant rules read (a statement on transactions, a label or a
-- review) takes them first, before the rule-change lock and the accounts'
-- rows (see _rescore_accounts): a concurrent change at the same merchant
-- waits for this one's commit and then (READ COMMITTED) scores with it.
-- Returns the number of buckets locked. Raises nothing.
CREATE OR REPLACE FUNCTION _lock_merchants(p_merchant_ids bigint[])
RETURNS bigint
LANGUAGE sql
VOLATILE
AS $$
    SELECT count(pg_advisory_xact_lock(72315463, b.bucket))
    FROM (SELECT DISTINCT hashint8(m.merchant_id) & 255 AS bucket
          FROM unnest(p_merchant_ids) AS m(merchant_id)
          WHERE m.merchant_id IS NOT NULL
          ORDER BY 1) AS b;
$$;

COMMENT ON FUNCTION _lock_merchants(bigint[]) IS
    'Locks the merchants'' advisory buckets in order (before the rule-change lock and the accounts); returns how many.';

REVOKE ALL ON FUNCTION _lock_merchants(bigint[]) FROM PUBLIC;
