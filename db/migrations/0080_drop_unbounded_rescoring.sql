-- 0080: _evaluate_from, _rescore_accounts and _score_shadow_rules take an
-- optional bound (until a position) and _merchant_neighbour_positions
-- returns it: a merchant neighbour is re-scored only up to its latest row
-- within the merchant rules' reach of the change, no longer to its end. The
-- function files create the new signatures; the old ones go here, once (a
-- function's arguments or result columns cannot change in place, and the
-- old overloads would make the calls ambiguous).
DROP FUNCTION IF EXISTS _evaluate_from(jsonb, bigint[], timestamptz[], bigint[], bigint[], numeric[]);
DROP FUNCTION IF EXISTS _rescore_accounts(bigint[], timestamptz[], bigint[], bigint[], numeric[]);
DROP FUNCTION IF EXISTS _score_shadow_rules(jsonb, bigint[], timestamptz[], bigint[], bigint[],
                                            timestamptz[], bigint[], bigint[], numeric[]);
DROP FUNCTION IF EXISTS _merchant_neighbour_positions(bigint[], timestamptz[]);
