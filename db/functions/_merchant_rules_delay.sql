-- _merchant_rules_delay() -> interval
--
-- NULL when no live rule reads other accounts' rows at a merchant or the
-- labels and reviews (compromised_merchant off, and no enabled user's rule
-- reading a merchant feature); else the shortest delay after which such a
-- rule reads a change: compromised_merchant's delay_days (as an elapsed
-- interval), or 0 when a user's rule reads the merchant features (they see
-- what was known strictly before the transaction's time). A change at a
-- merchant known at time K (a row stored at K, a label or review known at
-- K) can change only the verdicts of that merchant's rows with time after
-- K + this delay. Shadow rules (issue 18) count as live ones here, so
-- their shadow alerts are kept exact by the same re-scoring. Raises nothing.
CREATE OR REPLACE FUNCTION _merchant_rules_delay()
RETURNS interval
LANGUAGE sql
STABLE
AS $$
    SELECT min(d.delay)
    FROM (
        SELECT make_interval(secs => coalesce(
                   (r.parameters ->> 'delay_days')::double precision, 0) * 86400) AS delay
        FROM rules AS r
        WHERE r.rule_id = 'compromised_merchant' AND r.enabled
        UNION ALL
        SELECT interval '0'
        FROM rules AS r
        WHERE r.enabled AND r.expression IS NOT NULL AND _reads_merchant_features(r.expression)
        -- Shadow rules (issue 18) are kept exact the same way.
        UNION ALL
        SELECT make_interval(secs => coalesce(
                   (s.parameters ->> 'delay_days')::double precision, 0) * 86400)
        FROM shadow_rules AS s
        WHERE s.rule_id = 'compromised_merchant'
        UNION ALL
        SELECT interval '0'
        FROM shadow_rules AS s
        JOIN rules AS r ON r.rule_id = s.rule_id
        WHERE r.expression IS NOT NULL AND _reads_merchant_features(r.expression)
    ) AS d;
$$;

COMMENT ON FUNCTION _merchant_rules_delay() IS
    'NULL when no live rule reads a merchant''s other rows, labels or reviews; else the shortest delay after which one reads a change.';

REVOKE ALL ON FUNCTION _merchant_rules_delay() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _merchant_rules_delay() TO pgfraud_app, pgfraud_readonly;
