-- Drivers waiting for a lot, window and vehicle type that was full. When a spot frees up the
-- first waiter (by joining order) is booked automatically or told.
CREATE TABLE waitlist (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    lot_id BIGINT NOT NULL REFERENCES lots(id),
    start_at BIGINT NOT NULL,
    end_at BIGINT NOT NULL,
    vehicle_type TEXT NOT NULL,
    auto_book INTEGER NOT NULL,
    status TEXT NOT NULL,
    reservation_id TEXT,
    created_at BIGINT NOT NULL,
    resolved_at BIGINT
);
CREATE INDEX waitlist_waiting_by_lot ON waitlist(lot_id, created_at) WHERE status = 'waiting';
CREATE INDEX waitlist_by_user ON waitlist(user_id, created_at);
