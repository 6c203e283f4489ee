-- _actor(p_actor text) -> text
--
-- Who makes a change: p_actor when given (trimmed, non-empty), else
-- current_actor() (the pgfraud.actor setting, else the login role).
-- Raises PF001 (COLUMN 'actor') for an actor longer than 200 characters.
CREATE OR REPLACE FUNCTION _actor(p_actor text)
RETURNS text
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_actor text := coalesce(nullif(btrim(p_actor), ''), current_actor());
BEGIN
    IF length(v_actor) > 200 THEN
        RAISE EXCEPTION 'actor must be at most 200 characters' USING ERRCODE = 'PF001', COLUMN = 'actor';
    END IF;
    RETURN v_actor;
END;
$$;

COMMENT ON FUNCTION _actor(text) IS
    'Who makes a change: p_actor, else current_actor() (the pgfraud.actor setting, else session_user); PF001 when over 200 characters.';

REVOKE ALL ON FUNCTION _actor(text) FROM PUBLIC;
