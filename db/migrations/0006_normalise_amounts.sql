-- 0006: amounts stored with exactly 2 decimal places.
--
-- Every store path now writes amounts with scale 2 ("13" becomes 13.00); rows
-- stored before through SQL store_transactions may have fewer places. Same
-- value, so no verdict changes; the alerts of those rows are rewritten by the
-- scoring trigger (their amount column too).

UPDATE transactions SET amount = round(amount, 2) WHERE scale(amount) <> 2;
