-- 0018: one locking order for every path that re-scores (issue 15, fault 3).
--
-- A statement on transactions re-scored its own accounts (trigger
-- transactions_score_*) and then, in a second trigger
-- (transactions_then_merchants_*, score_merchant_neighbours), the other
-- accounts' later rows at its merchants, with zero deltas and no lock on
-- their account_states rows; label and review triggers did the same. Two
-- such paths met alert rows in any order and deadlocked (a reviewer against
-- out-of-order stores at shared merchants). Now score_changed_transactions
-- re-scores its own and the neighbouring accounts in one call, and
-- _rescore_accounts locks every account's account_states row in account_id
-- order before touching any alert; labels and reviews take the merchants'
-- locks first, as stores do. The second trigger and its function go, and
-- _rescore_merchant_rows loses its skip arguments (the neighbours are found
-- by _merchant_neighbour_positions).

DROP TRIGGER IF EXISTS transactions_then_merchants_inserted ON transactions;
DROP TRIGGER IF EXISTS transactions_then_merchants_deleted ON transactions;
DROP TRIGGER IF EXISTS transactions_then_merchants_updated ON transactions;
DROP FUNCTION IF EXISTS score_merchant_neighbours();
DROP FUNCTION IF EXISTS _rescore_merchant_rows(bigint[], timestamptz[], bigint[], timestamptz[], bigint[]);
