CREATE TABLE IF NOT EXISTS {db}.dim_lot (
    lot_id Int64,
    lot_name String,
    time_zone String,
    latitude Float64,
    longitude Float64,
    capacity Int32,
    registered_at Int64
) ENGINE = ReplacingMergeTree() ORDER BY lot_id;
CREATE TABLE IF NOT EXISTS {db}.dim_spot (
    spot_id Int64,
    lot_id Int64,
    first_seen_at Int64
) ENGINE = ReplacingMergeTree() ORDER BY (lot_id, spot_id);
CREATE TABLE IF NOT EXISTS {db}.dim_vehicle_type (
    vehicle_type String,
    fits_spots String
) ENGINE = ReplacingMergeTree() ORDER BY vehicle_type;
CREATE TABLE IF NOT EXISTS {db}.dim_user (
    user_key String,
    first_seen_at Int64
) ENGINE = ReplacingMergeTree() ORDER BY user_key;
CREATE TABLE IF NOT EXISTS {db}.dim_date (
    date Date,
    year Int32,
    month Int32,
    day Int32,
    iso_weekday Int32,
    iso_week Int32,
    is_weekend UInt8
) ENGINE = ReplacingMergeTree() ORDER BY date;
CREATE TABLE IF NOT EXISTS {db}.dim_time (
    time_key Int32,
    hour Int32,
    minute Int32,
    band String
) ENGINE = ReplacingMergeTree() ORDER BY time_key
