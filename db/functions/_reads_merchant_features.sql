-- _reads_merchant_features(p_expression text) -> boolean
--
-- Whether a user's rule expression reads one of the merchant features of
-- rule_features (merchant_transactions_7d, merchant_fraud_7d,
-- merchant_fraud_share_7d and their _30d twins, merchant_surge_7d), which
-- read other accounts' rows at the merchant and the labels and reviews known then. The rule code
-- computes those features only for such rules, and the re-scoring of a
-- merchant's rows after a change there runs when such a rule is on. NULL
-- expression: false. Raises nothing.
CREATE OR REPLACE FUNCTION _reads_merchant_features(p_expression text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT coalesce(p_expression ~* '\mmerchant_(transactions|fraud|surge)_', false);
$$;

COMMENT ON FUNCTION _reads_merchant_features(text) IS
    'Whether a user''s rule expression reads a merchant feature (merchant_transactions_7d ... merchant_fraud_share_30d, merchant_surge_7d).';

REVOKE ALL ON FUNCTION _reads_merchant_features(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _reads_merchant_features(text) TO pgfraud_app, pgfraud_readonly;
