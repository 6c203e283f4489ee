-- check_rule_expression(p_expression text) -> text
--
-- Validates a user's rule expression and returns it trimmed. Accepted: the
-- feature names of rule_features (amount, prior_count, prior_average,
-- seconds_since_previous, count_1h, sum_1h, count_24h, sum_24h, merchant_id,
-- first_at_merchant, merchant_transactions_7d, merchant_fraud_7d,
-- merchant_fraud_share_7d and the same three for 30d, merchant_surge_7d), numbers, list
-- membership (account_in_list('<list>'), merchant_in_list('<list>'): the
-- list must exist and hold that subject; see _bind_list_calls), + - * and
-- comparisons (< <= > >= = <> !=),
-- parentheses and commas, AND OR NOT IS NULL TRUE FALSE BETWEEN DISTINCT
-- FROM, and the functions abs, least, greatest, coalesce. Nothing else: no
-- strings, quotes, casts, semicolons, comments (--), unbalanced
-- parentheses, other names, subqueries or
-- other functions, so the expression can neither read outside the features
-- nor have side effects; no division (it could fail on a zero while scoring:
-- write amount > 3 * prior_average instead of amount / prior_average > 3).
-- The expression must then parse and be of type boolean (checked by
-- PostgreSQL over a features row). At most 1,000 characters.
-- Errors: PF001 (invalid_input), COLUMN 'expression', naming the token or
-- the problem.
CREATE OR REPLACE FUNCTION check_rule_expression(p_expression text)
RETURNS text
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_expression text := btrim(coalesce(p_expression, ''));
    -- The expression with its list calls checked and replaced by (true)
    -- (issue 17): what the token and type checks below read.
    v_scan text;
    v_token text;
    v_type text;
    v_features text[] := ARRAY['amount', 'prior_count', 'prior_average', 'seconds_since_previous',
                               'count_1h', 'sum_1h', 'count_24h', 'sum_24h', 'merchant_id',
                               'first_at_merchant', 'merchant_transactions_7d', 'merchant_fraud_7d',
                               'merchant_fraud_share_7d', 'merchant_transactions_30d',
                               'merchant_fraud_30d', 'merchant_fraud_share_30d',
                               'merchant_surge_7d'];
    v_words text[] := ARRAY['and', 'or', 'not', 'is', 'null', 'true', 'false', 'between',
                            'distinct', 'from'];
    v_functions text[] := ARRAY['abs', 'least', 'greatest', 'coalesce'];
BEGIN
    IF v_expression = '' THEN
        RAISE EXCEPTION 'expression must not be empty' USING ERRCODE = 'PF001', COLUMN = 'expression';
    END IF;
    IF length(v_expression) > 1000 THEN
        RAISE EXCEPTION 'expression must be at most 1000 characters'
            USING ERRCODE = 'PF001', COLUMN = 'expression';
    END IF;
    IF position('--' IN v_expression) > 0 THEN
        RAISE EXCEPTION 'expression may not use --' USING ERRCODE = 'PF001', COLUMN = 'expression';
    END IF;
    IF EXISTS (
        SELECT FROM (
            SELECT sum(CASE c WHEN '(' THEN 1 WHEN ')' THEN -1 ELSE 0 END)
                       OVER (ORDER BY i) AS depth
            FROM regexp_split_to_table(v_expression, '') WITH ORDINALITY AS s(c, i)
        ) AS d
        WHERE d.depth < 0
    ) OR length(replace(v_expression, '(', '')) <> length(replace(v_expression, ')', '')) THEN
        RAISE EXCEPTION 'expression has unbalanced parentheses' USING ERRCODE = 'PF001', COLUMN = 'expression';
    END IF;
    v_scan := _bind_list_calls(v_expression, false);
    FOR v_token IN
        SELECT m[1]
        FROM regexp_matches(v_scan,
                            '([A-Za-z_][A-Za-z0-9_]*|[0-9]+(?:\.[0-9]+)?|<=|>=|<>|!=|[-+*<>=(),]|\S)',
                            'g') AS m
    LOOP
        CONTINUE WHEN v_token ~ '^[0-9]+(\.[0-9]+)?$' OR v_token IN ('<=', '>=', '<>', '!=', '-', '+',
                                                                      '*', '<', '>', '=', '(', ')', ',');
        IF v_token ~ '^[A-Za-z_]' AND lower(v_token) = ANY (v_features || v_words || v_functions) THEN
            CONTINUE;
        END IF;
        RAISE EXCEPTION 'expression may not use %', v_token
            USING ERRCODE = 'PF001', COLUMN = 'expression',
                  HINT = CASE WHEN v_token = '/'
                              THEN 'no division: compare products, like amount > 3 * prior_average'
                              ELSE format('use the features %s, numbers, + - *, comparisons, AND OR NOT, IS NULL, BETWEEN, account_in_list(''<list>''), merchant_in_list(''<list>'') and %s',
                                          array_to_string(v_features, ', '),
                                          array_to_string(v_functions, ', ')) END;
    END LOOP;
    BEGIN
        EXECUTE format('SELECT pg_typeof((%s))::text FROM (SELECT (NULL::rule_features).*) AS f',
                       v_scan)
        INTO v_type;
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'expression does not parse: %', SQLERRM
            USING ERRCODE = 'PF001', COLUMN = 'expression';
    END;
    IF v_type IS DISTINCT FROM 'boolean' THEN
        RAISE EXCEPTION 'expression must be true or false (boolean), not %', v_type
            USING ERRCODE = 'PF001', COLUMN = 'expression';
    END IF;
    RETURN v_expression;
END;
$$;

COMMENT ON FUNCTION check_rule_expression(text) IS
    'Validates a user''s rule expression (whitelisted tokens over rule_features, boolean); returns it trimmed; PF001 naming the problem.';

REVOKE ALL ON FUNCTION check_rule_expression(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION check_rule_expression(text) TO pgfraud_app, pgfraud_readonly;
