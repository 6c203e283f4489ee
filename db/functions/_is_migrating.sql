-- _is_migrating() -> boolean
--
-- True while `pgfraud migrate` runs its transaction: the setting
-- pgfraud.migrating is 'on' AND the session's login is (a member of) the
-- owner of the schema's tables, as migrate's is. The rules triggers skip
-- their checks and re-scoring then (migrate does both once at its end).
-- Any login may set a custom setting, so the setting alone would let the
-- service's login switch re-scoring off; the owner check refuses that.
CREATE OR REPLACE FUNCTION _is_migrating()
RETURNS boolean
LANGUAGE sql
STABLE
AS $$
    SELECT coalesce(current_setting('pgfraud.migrating', true) = 'on', false)
       AND pg_has_role(session_user,
                       (SELECT c.relowner FROM pg_class AS c WHERE c.oid = 'rules'::regclass),
                       'MEMBER');
$$;

COMMENT ON FUNCTION _is_migrating() IS
    'True inside pgfraud migrate''s transaction (pgfraud.migrating on, and the login owns the schema).';

REVOKE ALL ON FUNCTION _is_migrating() FROM PUBLIC;
