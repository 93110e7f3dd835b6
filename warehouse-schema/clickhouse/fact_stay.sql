-- One row per stay; an open stay is replaced by its closed version (higher version column).
CREATE TABLE IF NOT EXISTS {db}.fact_stay (
    session_id String,
    lot_id Int64,
    spot_id Nullable(Int64),
    user_key Nullable(String),
    reservation_id Nullable(String),
    vehicle_type String,
    method String,
    entered_at Int64,
    entered_date Date MATERIALIZED toDate(intDiv(entered_at, 1000)),
    exited_at Nullable(Int64),
    duration_s Nullable(Int64),
    amount_cents Nullable(Int64),
    currency Nullable(String),
    is_reservation UInt8,
    is_open UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(entered_date)
ORDER BY (lot_id, entered_at, session_id)
