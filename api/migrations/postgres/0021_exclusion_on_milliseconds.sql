-- The same guarantee as before, checked on the stored milliseconds themselves: the integers'
-- range [start_at, end_at) overlaps another exactly when the timestamps' range did, and is
-- built without a numeric division and two conversions to a timestamp for every row the
-- constraint compares (with its index, the dearest part of inserting a reservation).
ALTER TABLE reservations DROP CONSTRAINT no_double_booking;
ALTER TABLE reservations ADD CONSTRAINT no_double_booking EXCLUDE USING gist (
    spot_id WITH =,
    int8range(start_at, end_at) WITH &&
) WHERE (status IN ('active', 'checked_in'));
