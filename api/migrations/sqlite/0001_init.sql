-- Operational store, SQLite flavour. Times are INTEGER epoch milliseconds (UTC).
CREATE TABLE lots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    latitude REAL NOT NULL,
    longitude REAL NOT NULL,
    currency TEXT NOT NULL,
    default_cents_per_hour INTEGER NOT NULL CHECK (default_cents_per_hour >= 0),
    created_at INTEGER NOT NULL
);

CREATE TABLE spots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lot_id INTEGER NOT NULL REFERENCES lots(id),
    label TEXT NOT NULL,
    vehicle_type TEXT NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0,
    UNIQUE (lot_id, label)
);
CREATE INDEX spots_by_lot ON spots(lot_id, vehicle_type);

-- A stay from entry to exit. At most one open stay per spot: the index makes a lost race a
-- constraint error instead of two cars in one spot.
CREATE TABLE parking_sessions (
    id TEXT PRIMARY KEY,
    lot_id INTEGER NOT NULL REFERENCES lots(id),
    spot_id INTEGER NOT NULL REFERENCES spots(id),
    vehicle_type TEXT NOT NULL,
    method TEXT NOT NULL,
    plate TEXT,
    user_id TEXT,
    entered_at INTEGER NOT NULL,
    exited_at INTEGER,
    amount_cents INTEGER,
    currency TEXT
);
CREATE UNIQUE INDEX one_open_session_per_spot ON parking_sessions(spot_id) WHERE exited_at IS NULL;
CREATE INDEX open_sessions_by_lot ON parking_sessions(lot_id) WHERE exited_at IS NULL;

-- Rate schedule as published by pricing: the row with the latest effective_from not after the
-- moment of interest is the rate in force.
CREATE TABLE rates (
    lot_id INTEGER NOT NULL REFERENCES lots(id),
    band TEXT NOT NULL,
    day_kind TEXT NOT NULL,
    vehicle_type TEXT NOT NULL,
    effective_from INTEGER NOT NULL,
    cents_per_hour INTEGER NOT NULL CHECK (cents_per_hour >= 0),
    published_at INTEGER NOT NULL,
    PRIMARY KEY (lot_id, band, day_kind, vehicle_type, effective_from)
);

-- Every state change writes its event here in the same transaction. `id` is the position the
-- relay and the embedded ingest consume in order.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    lot_id INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    published_at INTEGER
);
