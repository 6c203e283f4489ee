-- 0001: the transactions table and the index that serves one account's history.
--
-- One row per transaction. The constraints refuse bad rows however they arrive
-- (HTTP, COPY, psql): negative, NaN or infinite amounts, more than 2 decimal
-- places, amounts of 10^13 or more, negative ids, timestamps finer than a
-- millisecond or outside 2000-01-01 .. 2100-01-01 (UTC).

CREATE TABLE transactions (
    transaction_id bigint NOT NULL,
    account_id bigint NOT NULL,
    ts timestamptz NOT NULL,
    amount numeric NOT NULL,
    CONSTRAINT transactions_pkey PRIMARY KEY (transaction_id),
    CONSTRAINT transactions_transaction_id_check CHECK (transaction_id >= 0),
    CONSTRAINT transactions_account_id_check CHECK (account_id >= 0),
    CONSTRAINT transactions_ts_check CHECK (
        ts = date_trunc('milliseconds', ts)
        AND ts >= TIMESTAMPTZ '2000-01-01 00:00:00+00'
        AND ts < TIMESTAMPTZ '2100-01-01 00:00:00+00'
    ),
    -- NaN and Infinity fail "amount < 10^13"; scale() refuses 12.345 instead of rounding it.
    CONSTRAINT transactions_amount_check CHECK (
        amount >= 0
        AND amount < 10000000000000
        AND scale(amount) <= 2
    )
);

COMMENT ON TABLE transactions IS
    'One row per transaction: account, transaction id, event time (ms, UTC), amount (currency units, 2 decimal places).';
COMMENT ON COLUMN transactions.ts IS 'Event time, millisecond resolution; "timestamp" on the wire.';
COMMENT ON COLUMN transactions.amount IS 'Currency units, exact, 0 <= amount < 10^13, at most 2 decimal places.';

-- Covering index: one account's history in event order is an index-only scan.
CREATE INDEX transactions_account_history_idx
    ON transactions (account_id, ts, transaction_id) INCLUDE (amount);
