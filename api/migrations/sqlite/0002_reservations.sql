-- Booking rules per lot, and reservations of a spot for a time window [start_at, end_at).
ALTER TABLE lots ADD COLUMN booking_window_days INTEGER NOT NULL DEFAULT 7;
ALTER TABLE lots ADD COLUMN min_reservation_minutes INTEGER NOT NULL DEFAULT 30;
ALTER TABLE lots ADD COLUMN max_reservation_minutes INTEGER NOT NULL DEFAULT 1440;

CREATE TABLE reservations (
    id TEXT PRIMARY KEY,
    lot_id INTEGER NOT NULL REFERENCES lots(id),
    spot_id INTEGER NOT NULL REFERENCES spots(id),
    user_id TEXT NOT NULL,
    vehicle_type TEXT NOT NULL,
    start_at INTEGER NOT NULL,
    end_at INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    quote_cents INTEGER NOT NULL,
    currency TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    cancelled_at INTEGER,
    cancellation_id TEXT,
    CHECK (start_at < end_at),
    UNIQUE (user_id, idempotency_key)
);
-- SQLite has no exclusion constraints: overlap is checked inside the single writer transaction
-- that inserts (BEGIN IMMEDIATE), which no other writer can interleave with.
CREATE INDEX active_reservations_by_spot ON reservations(spot_id, start_at, end_at) WHERE status = 'active';
CREATE INDEX reservations_by_user ON reservations(user_id, start_at);
