-- rule_parameter_defaults() -> TABLE (rule_id text, parameter text, value jsonb)
--
-- The optional rule parameters and the value a missing one takes: validate_rules
-- accepts their absence and writes the default into the normalised
-- parameters. Every row names a parameter of rule_parameter_ranges().
--   window_days 0 of below_average and amount_spike: the whole past.
--   unused_days 0 of new_merchant_large: a merchant is new if never paid there.
-- Raises nothing.
CREATE OR REPLACE FUNCTION rule_parameter_defaults()
RETURNS TABLE (rule_id text, parameter text, value jsonb)
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    VALUES
        ('below_average', 'window_days', '0'::jsonb),
        ('amount_spike',  'window_days', '0'::jsonb),
        ('new_merchant_large', 'unused_days', '0'::jsonb)
$$;

COMMENT ON FUNCTION rule_parameter_defaults() IS
    'Optional rule parameters and their defaults (rule_id, parameter, value), used by validate_rules.';

REVOKE ALL ON FUNCTION rule_parameter_defaults() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rule_parameter_defaults() TO pgfraud_app, pgfraud_readonly;
