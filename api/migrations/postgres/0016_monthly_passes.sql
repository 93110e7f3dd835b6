-- Monthly passes. An operator sells products per lot: the weekdays (a bit set, Monday = bit 0)
-- and whole local hours they cover, the vehicle types (comma list), the price, how many passes
-- may be held at once ('spots'; 'held' counts the pending and active ones, moved by one guarded
-- update so two buyers never take the last one), and whether each holder gets a spot kept.
CREATE TABLE pass_products (
    id TEXT PRIMARY KEY,
    lot_id BIGINT NOT NULL REFERENCES lots(id),
    name TEXT NOT NULL,
    days BIGINT NOT NULL,
    from_hour BIGINT NOT NULL,
    until_hour BIGINT NOT NULL,
    vehicle_types TEXT NOT NULL,
    price_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    spots BIGINT NOT NULL,
    held BIGINT NOT NULL DEFAULT 0,
    keeps_spot INTEGER NOT NULL,
    retired INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    CHECK (held >= 0 AND held <= spots)
);
CREATE INDEX pass_products_by_lot ON pass_products(lot_id);

-- A driver's pass: its current period [period_start, period_end), numbered from 1; whether it
-- renews; how it is paid (the gateway token, for renewals); the spot kept in this period (a
-- reservation row of the pass, 'hold_id', so the no-double-booking guarantee covers it too).
CREATE TABLE monthly_passes (
    id TEXT PRIMARY KEY,
    product_id TEXT NOT NULL REFERENCES pass_products(id),
    lot_id BIGINT NOT NULL REFERENCES lots(id),
    user_id TEXT NOT NULL,
    vehicle_id TEXT NOT NULL,
    plate TEXT NOT NULL,
    vehicle_type TEXT NOT NULL,
    status TEXT NOT NULL,
    period BIGINT NOT NULL,
    period_start BIGINT NOT NULL,
    period_end BIGINT NOT NULL,
    renews INTEGER NOT NULL DEFAULT 1,
    reminded_period BIGINT NOT NULL DEFAULT 0,
    method TEXT NOT NULL,
    token TEXT,
    last4 TEXT,
    hold_id TEXT,
    spot_id BIGINT,
    idempotency_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    ended_at BIGINT,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX monthly_passes_by_user ON monthly_passes(user_id);
CREATE INDEX monthly_passes_by_plate ON monthly_passes(lot_id, plate);
CREATE INDEX monthly_passes_by_end ON monthly_passes(status, period_end);

ALTER TABLE reservations ADD COLUMN monthly_pass_id TEXT;
ALTER TABLE parking_sessions ADD COLUMN monthly_pass_id TEXT;

-- A payment of a monthly pass's period names the pass (a reversal by the bank ends it).
ALTER TABLE payments ADD COLUMN monthly_pass_id TEXT;
-- One stay at a time on a pass, and one live pass per plate and lot, under any concurrency.
CREATE UNIQUE INDEX one_open_stay_per_pass ON parking_sessions(monthly_pass_id)
    WHERE exited_at IS NULL AND monthly_pass_id IS NOT NULL;
CREATE UNIQUE INDEX one_live_pass_per_plate ON monthly_passes(lot_id, plate)
    WHERE status IN ('pending', 'active');
