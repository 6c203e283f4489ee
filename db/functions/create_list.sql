-- create_list(p_list_name text, p_subject text, p_kind text,
--             p_description text DEFAULT '', p_actor text DEFAULT NULL) -> jsonb
--
-- Creates a named list: p_subject 'account' or 'merchant' (what its entries
-- are), p_kind 'block' (forces decline) or 'allow' (forces approve; the
-- alerts are kept and the decision shows it overruled them). Creating a
-- list that exists with the same subject and kind changes nothing. Lists
-- are never dropped (decisions and users' rules name them). Returns
-- get_list(p_list_name). Runs as the owner (the service calls it from
-- POST /lists with the token).
-- Errors: PF001 (invalid_input) naming the field: list_name not
-- lower_snake_case (a-z, digits, _, starting with a letter, at most 63),
-- subject, kind, description over 2000 characters, or a list of that name
-- with another subject or kind.
CREATE OR REPLACE FUNCTION create_list(
    p_list_name text,
    p_subject text,
    p_kind text,
    p_description text DEFAULT '',
    p_actor text DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_list lists;
BEGIN
    IF p_list_name IS NULL OR p_list_name !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'list_name must be lower_snake_case (a-z, 0-9 and _, starting with a letter, at most 63 characters)'
            USING ERRCODE = 'PF001', COLUMN = 'list_name';
    END IF;
    IF p_subject IS NULL OR p_subject NOT IN ('account', 'merchant') THEN
        RAISE EXCEPTION 'subject must be account or merchant' USING ERRCODE = 'PF001', COLUMN = 'subject';
    END IF;
    IF p_kind IS NULL OR p_kind NOT IN ('allow', 'block') THEN
        RAISE EXCEPTION 'kind must be allow or block' USING ERRCODE = 'PF001', COLUMN = 'kind';
    END IF;
    IF length(coalesce(p_description, '')) > 2000 THEN
        RAISE EXCEPTION 'description must be at most 2000 characters'
            USING ERRCODE = 'PF001', COLUMN = 'description';
    END IF;
    INSERT INTO lists (list_name, subject, kind, description, created_by)
    VALUES (p_list_name, p_subject, p_kind, coalesce(p_description, ''), _actor(p_actor))
    ON CONFLICT ON CONSTRAINT lists_pkey DO NOTHING;
    SELECT l.* INTO v_list FROM lists AS l WHERE l.list_name = p_list_name;
    IF (v_list.subject, v_list.kind) IS DISTINCT FROM (p_subject, p_kind) THEN
        RAISE EXCEPTION 'list % exists as a % list of %s', p_list_name, v_list.kind, v_list.subject
            USING ERRCODE = 'PF001', COLUMN = 'list_name';
    END IF;
    RETURN get_list(p_list_name);
END;
$$;

COMMENT ON FUNCTION create_list(text, text, text, text, text) IS
    'Creates an allow/block list of accounts or merchants (idempotent); PF001 naming the field.';

REVOKE ALL ON FUNCTION create_list(text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION create_list(text, text, text, text, text) TO pgfraud_app;
