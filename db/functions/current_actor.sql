-- current_actor() -> text
--
-- The person (or service) a write is made for, as recorded in reviews, the
-- audit trail, rule, policy and list changes and case actions (issue 18):
-- the session's or transaction's `pgfraud.actor` setting when set and not
-- empty (the HTTP service sets it per request from the caller's token name,
-- the CLI from --actor, psql users with SET pgfraud.actor = 'alice'),
-- otherwise session_user (the database login: inside the SECURITY DEFINER
-- functions and triggers that record actors, current_user is the schema
-- owner, so the login is what names a psql user). Text of 1 or more
-- characters; raises nothing.
CREATE OR REPLACE FUNCTION current_actor()
RETURNS text
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$
    SELECT coalesce(nullif(current_setting('pgfraud.actor', true), ''), session_user::text);
$$;

COMMENT ON FUNCTION current_actor() IS
    'Who a write is made for: the pgfraud.actor setting when set and not empty, else the login (session_user).';

REVOKE ALL ON FUNCTION current_actor() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION current_actor() TO pgfraud_app, pgfraud_readonly;
