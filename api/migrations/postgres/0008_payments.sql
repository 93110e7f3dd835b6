-- Payments: only gateway tokens and the last four digits are ever stored, never a card number,
-- CVV or expiry. One payment per (user, idempotency key): a retried request finds its first
-- result.
CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    reservation_id TEXT,
    method TEXT NOT NULL,
    token TEXT,
    last4 TEXT,
    amount_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    gateway_ref TEXT,
    refunded_cents BIGINT NOT NULL DEFAULT 0,
    idempotency_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX payments_by_reservation ON payments(reservation_id);
CREATE INDEX payments_by_gateway_ref ON payments(gateway_ref);

-- Prepaid balances.
CREATE TABLE balances (
    user_id TEXT PRIMARY KEY,
    cents BIGINT NOT NULL
);

-- Gateway webhook events already handled: a redelivered event changes nothing.
CREATE TABLE gateway_events (
    event_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
