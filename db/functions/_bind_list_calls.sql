-- _bind_list_calls(p_expression text, p_compile boolean) -> text
--
-- Users' rules may test list membership: account_in_list('<list>') (the
-- transaction's account) and merchant_in_list('<list>') (its merchant;
-- false when unknown), true when the id had an entry in force on that list
-- at the transaction's time. This finds each such call, checks that the
-- list exists and holds that subject (accounts for account_in_list,
-- merchants for merchant_in_list), and returns the expression with each
-- call replaced: by (true) when p_compile is false (what
-- check_rule_expression then checks token by token and for type), by
-- _is_listed('<list>', account_id|merchant_id, ts) when true (what
-- _compile_custom_rules compiles).
-- Errors: PF001 (invalid_input, COLUMN 'expression') for a list that does
-- not exist or holds the other subject.
CREATE OR REPLACE FUNCTION _bind_list_calls(p_expression text, p_compile boolean)
RETURNS text
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_pattern constant text := '(account|merchant)_in_list\s*\(\s*''([^'']*)''\s*\)';
    v_call text[];
    v_subject text;
    v_result text := p_expression;
BEGIN
    FOR v_call IN SELECT m FROM regexp_matches(p_expression, v_pattern, 'gi') AS m LOOP
        SELECT l.subject INTO v_subject FROM lists AS l WHERE l.list_name = v_call[2];
        IF NOT FOUND THEN
            RAISE EXCEPTION 'expression names no list %', v_call[2]
                USING ERRCODE = 'PF001', COLUMN = 'expression',
                      HINT = 'create it first: pgfraud list create';
        END IF;
        IF v_subject <> lower(v_call[1]) THEN
            RAISE EXCEPTION 'list % holds %s, not %s: use %_in_list', v_call[2], v_subject,
                    lower(v_call[1]), v_subject
                USING ERRCODE = 'PF001', COLUMN = 'expression';
        END IF;
    END LOOP;
    IF p_compile THEN
        RETURN regexp_replace(v_result, v_pattern, '_is_listed(''\2'', \1_id, ts)', 'gi');
    END IF;
    RETURN regexp_replace(v_result, v_pattern, '(true)', 'gi');
END;
$$;

COMMENT ON FUNCTION _bind_list_calls(text, boolean) IS
    'Checks the account_in_list/merchant_in_list calls of a rule expression (list exists, right subject) and replaces them (true for checking, _is_listed for compiling); PF001.';

REVOKE ALL ON FUNCTION _bind_list_calls(text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _bind_list_calls(text, boolean) TO pgfraud_app, pgfraud_readonly;
