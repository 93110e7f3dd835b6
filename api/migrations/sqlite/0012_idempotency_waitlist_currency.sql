-- One idempotency record per driver and Idempotency-Key, for every keyed request (bookings,
-- payments, top-ups): the fingerprint of the request the key was first used for, and once that
-- request has finished, its answer. `locked_until` bounds how long a request in flight holds
-- the key (a process that died with it loses it then).
CREATE TABLE idempotency_keys (
    user_id TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status_code INTEGER,
    response TEXT,
    created_at BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    completed_at BIGINT,
    PRIMARY KEY (user_id, idem_key)
);

-- Why a waiter could not be served (status `failed`): the queue goes on past them.
ALTER TABLE waitlist ADD COLUMN reason TEXT;

-- A prepaid balance holds one currency, fixed by its first top-up. Every top-up so far was
-- made in EUR.
ALTER TABLE balances ADD COLUMN currency TEXT;
UPDATE balances SET currency = 'EUR';
