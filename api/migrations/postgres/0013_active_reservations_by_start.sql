-- The reservations job's sweep asks every few minutes for the active reservations starting by a
-- time (reminders, no-show warnings, no-shows). Without an index that is a scan of every
-- reservation ever made, which grows with the history; with it, a range read of the few
-- still active.
CREATE INDEX active_reservations_by_start ON reservations(start_at) WHERE status = 'active';
