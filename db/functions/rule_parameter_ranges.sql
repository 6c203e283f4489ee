-- rule_parameter_ranges()
--     -> TABLE (rule_id text, parameter text, kind text, minimum numeric,
--               maximum numeric, maximum_excluded boolean)
--
-- The one schema of rule parameters: every parameter of every rule that
-- evaluate_account knows, one row each. kind 'integer' (a JSON number with no
-- fractional part, 5.0 counts as 5) or 'number' (any JSON number, kept
-- exactly); minimum <= value <= maximum (value < maximum when
-- maximum_excluded). validate_rules() refuses anything else. A new rule or
-- parameter adds a line here (and its code to evaluate_account).
-- Units: seconds for *_seconds, days for *_days (fractions allowed), currency
-- units for threshold, counts for min_history, max_transactions, max_run and
-- min_known_fraud, plain factors for factor and multiplier, a share (0..1)
-- for min_fraud_share.
-- Raises nothing.
CREATE OR REPLACE FUNCTION rule_parameter_ranges()
RETURNS TABLE (
    rule_id text,
    parameter text,
    kind text,
    minimum numeric,
    maximum numeric,
    maximum_excluded boolean
)
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    VALUES
        ('below_average',    'factor',           'number',  0, 1000,           false),
        ('below_average',    'min_history',      'integer', 1, 1000000,        false),
        -- window_days: 0 is the whole past (optional: rule_parameter_defaults).
        ('below_average',    'window_days',      'number',  0, 3660,           false),
        ('amount_spike',     'multiplier',       'number',  0, 1000,           false),
        ('amount_spike',     'min_history',      'integer', 1, 1000000,        false),
        ('amount_spike',     'window_days',      'number',  0, 3660,           false),
        ('large_amount',     'threshold',        'number',  0, 10000000000000, true),
        -- 31,622,400 s = 366 days.
        ('velocity',         'window_seconds',   'integer', 1, 31622400,       false),
        ('velocity',         'max_transactions', 'integer', 1, 1000000,        false),
        ('rapid_succession', 'min_gap_seconds',  'number',  0, 86400,          false),
        ('same_timestamp',   'max_transactions', 'integer', 1, 1000000,        false),
        ('new_merchant_large', 'multiplier',     'number',  0, 1000,           false),
        ('new_merchant_large', 'min_history',    'integer', 1, 1000000,        false),
        -- unused_days: 0 is "never paid there" (optional: rule_parameter_defaults).
        ('new_merchant_large', 'unused_days',    'number',  0, 3660,           false),
        ('new_merchant_run', 'multiplier',       'number',  0, 1000,           false),
        -- max_run: payments in the run, this one included (a run has at least 2).
        ('new_merchant_run', 'max_run',          'integer', 2, 1000,           false),
        ('new_merchant_run', 'unused_days',      'number',  0, 3660,           false),
        ('new_merchant_run', 'min_history',      'integer', 1, 1000000,        false),
        ('compromised_merchant', 'window_days',  'number',  0, 3660,           false),
        ('compromised_merchant', 'delay_days',   'number',  0, 3660,           false),
        ('compromised_merchant', 'min_known_fraud', 'integer', 1, 1000000,     false),
        ('compromised_merchant', 'min_fraud_share', 'number', 0, 1,            false)
$$;

COMMENT ON FUNCTION rule_parameter_ranges() IS
    'The schema of rule parameters: (rule_id, parameter, kind integer|number, minimum, maximum, maximum_excluded), one row per parameter.';

REVOKE ALL ON FUNCTION rule_parameter_ranges() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rule_parameter_ranges() TO pgfraud_app, pgfraud_readonly;
