-- _is_distributed() -> boolean
--
-- Whether this database has pgfraud's Citus layout (`pgfraud db
-- distribute`: transactions hash-distributed on account_id; docs/scaling.md).
-- The paths that differ there ask it: a rule change re-scores per account
-- (_rescore_rules_audited), and rules reading the merchant features and
-- shadow rules are refused (_refuse_on_citus). False on one node (no citus
-- extension). Raises nothing.
CREATE OR REPLACE FUNCTION _is_distributed()
RETURNS boolean
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_distributed boolean;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition AS p'
            '  WHERE p.logicalrelid = to_regclass(''public.transactions'') AND p.partmethod = ''h'')'
    INTO v_distributed;
    RETURN v_distributed;
END;
$$;

COMMENT ON FUNCTION _is_distributed() IS
    'True when the database has pgfraud''s Citus layout (transactions distributed on account_id).';

REVOKE ALL ON FUNCTION _is_distributed() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _is_distributed() TO pgfraud_app, pgfraud_readonly;
