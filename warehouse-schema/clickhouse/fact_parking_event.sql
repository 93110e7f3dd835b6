-- One row per event. ReplacingMergeTree on a sort key that ends in event_id: a replayed event has
-- the same key and collapses on merge; readers that need exact counts before a merge use FINAL
-- or count(DISTINCT event_id). Times are Int64 epoch milliseconds (ClickHouse 18.16 has no
-- DateTime64), with a materialized Date for partitioning.
CREATE TABLE IF NOT EXISTS {db}.fact_parking_event (
    event_id String,
    schema_version UInt16,
    event_type String,
    occurred_at Int64,
    event_date Date MATERIALIZED toDate(intDiv(occurred_at, 1000)),
    lot_id Int64,
    session_id Nullable(String),
    user_key Nullable(String),
    reservation_id Nullable(String),
    spot_id Nullable(Int64),
    vehicle_type Nullable(String),
    method Nullable(String),
    duration_s Nullable(Int64),
    amount_cents Nullable(Int64),
    currency Nullable(String),
    payment_id Nullable(String),
    start_at Nullable(Int64),
    end_at Nullable(Int64),
    reason Nullable(String),
    band Nullable(String),
    day_kind Nullable(String),
    cents_per_hour Nullable(Int64),
    effective_from Nullable(Int64),
    capacity Nullable(Int32),
    lot_name Nullable(String),
    time_zone Nullable(String),
    latitude Nullable(Float64),
    longitude Nullable(Float64),
    monthly_pass_id Nullable(String)
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_date)
ORDER BY (lot_id, occurred_at, event_id)
