-- "Is spot s held during [a, b)?" asks `status IN ('active', 'checked_in')` of each hold it
-- reads. The index holds only such rows, but SQLite reads a column the index lacks from the
-- table, so every taken spot cost a seek into `reservations` for its status: a full window's
-- refusal read a table row per spot of the lot, on a reader whose cache the writer's commits
-- keep emptying. With the status in the index, the probe reads the index alone (a covering
-- index). The answer is the same; only where it is read from changes.
DROP INDEX holding_reservations_by_spot;
CREATE INDEX holding_reservations_by_spot ON reservations(spot_id, start_at DESC, end_at, status)
    WHERE status IN ('active', 'checked_in');
