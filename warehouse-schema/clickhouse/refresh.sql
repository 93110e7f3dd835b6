-- Derived tables rebuilt from fact_parking_event (run by `parkflow warehouse refresh` and the
-- warehouse-refresh job). Re-running is harmless: every target is a ReplacingMergeTree keyed on
-- its identity; a stay that has exited carries version 2 and replaces its open version 1.
INSERT INTO {db}.fact_stay (session_id, lot_id, spot_id, user_key, reservation_id, vehicle_type,
                            method, entered_at, exited_at, duration_s, amount_cents, currency,
                            is_reservation, is_open, version)
SELECT c.session_id, c.lot_id, c.spot_id, c.user_key, c.reservation_id, c.vehicle_type, c.method,
       c.entered_at, x.exited_at, x.duration_s, x.amount_cents, x.currency,
       toUInt8(isNotNull(c.reservation_id)), toUInt8(isNull(x.exited_at)),
       toUInt64(if(isNull(x.exited_at), 1, 2))
FROM (
    SELECT assumeNotNull(session_id) AS session_id, lot_id, spot_id, user_key, reservation_id,
           assumeNotNull(vehicle_type) AS vehicle_type, assumeNotNull(method) AS method,
           occurred_at AS entered_at
    FROM {db}.fact_parking_event FINAL
    WHERE event_type = 'check_in'
) AS c
ANY LEFT JOIN (
    SELECT assumeNotNull(session_id) AS session_id, toNullable(occurred_at) AS exited_at,
           duration_s, amount_cents, currency
    FROM {db}.fact_parking_event FINAL
    WHERE event_type = 'exit'
) AS x USING session_id;

INSERT INTO {db}.dim_lot (lot_id, lot_name, time_zone, latitude, longitude, capacity, registered_at)
SELECT lot_id, assumeNotNull(lot_name), assumeNotNull(time_zone), assumeNotNull(latitude),
       assumeNotNull(longitude), assumeNotNull(capacity), occurred_at
FROM {db}.fact_parking_event FINAL
WHERE event_type = 'lot_registered';

INSERT INTO {db}.dim_spot (spot_id, lot_id, first_seen_at)
SELECT assumeNotNull(spot_id) AS spot, lot_id, min(occurred_at)
FROM {db}.fact_parking_event FINAL
WHERE isNotNull(spot_id)
GROUP BY spot, lot_id;

INSERT INTO {db}.dim_user (user_key, first_seen_at)
SELECT assumeNotNull(user_key) AS user, min(occurred_at)
FROM {db}.fact_parking_event FINAL
WHERE isNotNull(user_key)
GROUP BY user
