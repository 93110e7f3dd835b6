-- Booking rules per lot, and reservations of a spot for a time window [start_at, end_at).
ALTER TABLE lots ADD COLUMN booking_window_days BIGINT NOT NULL DEFAULT 7;
ALTER TABLE lots ADD COLUMN min_reservation_minutes BIGINT NOT NULL DEFAULT 30;
ALTER TABLE lots ADD COLUMN max_reservation_minutes BIGINT NOT NULL DEFAULT 1440;

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE reservations (
    id TEXT PRIMARY KEY,
    lot_id BIGINT NOT NULL REFERENCES lots(id),
    spot_id BIGINT NOT NULL REFERENCES spots(id),
    user_id TEXT NOT NULL,
    vehicle_type TEXT NOT NULL,
    start_at BIGINT NOT NULL,
    end_at BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    quote_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    cancelled_at BIGINT,
    cancellation_id TEXT,
    CHECK (start_at < end_at),
    UNIQUE (user_id, idempotency_key),
    -- No double booking, under any concurrency: two active reservations of one spot never
    -- overlap. Half-open ranges, so back-to-back windows ([9,10) and [10,11)) are both allowed.
    CONSTRAINT no_double_booking EXCLUDE USING gist (
        spot_id WITH =,
        tstzrange(to_timestamp(start_at / 1000.0), to_timestamp(end_at / 1000.0), '[)') WITH &&
    ) WHERE (status = 'active')
);
CREATE INDEX reservations_by_user ON reservations(user_id, start_at);
