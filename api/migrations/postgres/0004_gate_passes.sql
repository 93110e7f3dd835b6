-- Gate passes, the stays of reservations, spot positions and drivers' workplaces.
--
-- A reservation holds its spot while `active` (booked) or `checked_in` (the car is in); it lets
-- the spot go when `completed` (the car left), `cancelled` or `no_show`.

-- A pass opens the gate from this many minutes before the start until as many after it.
ALTER TABLE lots ADD COLUMN entry_grace_minutes BIGINT NOT NULL DEFAULT 15;
-- Drive-ups are kept off spots reserved to start within this many minutes.
ALTER TABLE lots ADD COLUMN drive_up_horizon_minutes BIGINT NOT NULL DEFAULT 240;

ALTER TABLE reservations ADD COLUMN vehicle_id TEXT;
ALTER TABLE reservations ADD COLUMN plate TEXT;
ALTER TABLE reservations ADD COLUMN session_id TEXT;

-- The same guarantee as before, over every status that holds the spot.
ALTER TABLE reservations DROP CONSTRAINT no_double_booking;
ALTER TABLE reservations ADD CONSTRAINT no_double_booking EXCLUDE USING gist (
    spot_id WITH =,
    tstzrange(to_timestamp(start_at / 1000.0), to_timestamp(end_at / 1000.0), '[)') WITH &&
) WHERE (status IN ('active', 'checked_in'));
CREATE INDEX holding_reservations_by_plate ON reservations(lot_id, plate)
    WHERE status IN ('active', 'checked_in');

ALTER TABLE parking_sessions ADD COLUMN reservation_id TEXT;
CREATE INDEX open_sessions_by_plate ON parking_sessions(lot_id, plate) WHERE exited_at IS NULL;

-- Where a spot is, so the one nearest to a driver's workplace can be offered first.
ALTER TABLE spots ADD COLUMN latitude DOUBLE PRECISION;
ALTER TABLE spots ADD COLUMN longitude DOUBLE PRECISION;

ALTER TABLE users ADD COLUMN workplace_latitude DOUBLE PRECISION;
ALTER TABLE users ADD COLUMN workplace_longitude DOUBLE PRECISION;
CREATE INDEX vehicles_by_plate ON vehicles(plate);
