-- The same guarantee as before, checked on the stored milliseconds themselves: the integers'
-- range [start_at, end_at) overlaps another exactly when the timestamps' range did, and is
-- built without a numeric division and two conversions to a timestamp for every row the
-- constraint compares (with its index, the dearest part of inserting a reservation).
-- The range is still spelled apart from `holding_reservations_by_lot_window`'s (the bounds
-- given, '[)', as they are by default): that index leads with the lot and the free-spot query
-- names its expression; with the same expression, once statistics are current, the planner
-- chose this spot-led index for a lot's query and read every lot's overlapping reservations
-- (migration 0006; `store::reservations::tests` in the API's suite checks the plan).
ALTER TABLE reservations DROP CONSTRAINT no_double_booking;
ALTER TABLE reservations ADD CONSTRAINT no_double_booking EXCLUDE USING gist (
    spot_id WITH =,
    int8range(start_at, end_at, '[)') WITH &&
) WHERE (status IN ('active', 'checked_in'));
