-- The holding reservations of one lot that overlap a window, answered by one index scan. The
-- free-spot query reads them once per booking (as a hashed `NOT IN` set) when the availability
-- index has no spot to offer, for a named spot, and when a reservation changes. Its range
-- expression differs from the exclusion constraint's on purpose: that index leads with the spot,
-- and a planner choosing it would read every lot's reservations overlapping the window.
CREATE INDEX holding_reservations_by_lot_window ON reservations USING gist (
    lot_id,
    int8range(start_at, end_at)
) WHERE status IN ('active', 'checked_in');
