-- A gate that reads a plate asks for the lot's `active` reservation of that plate starting
-- about now (`store::reservations::arriving_by_plate`). SQLite never used
-- `holding_reservations_by_plate` for it: that index holds rows `WHERE status IN ('active',
-- 'checked_in')`, and SQLite does not prove that `status = 'active'` implies it, so it read
-- every active reservation of every lot starting in the window (`active_reservations_by_start`)
-- while every booking still paid to insert into the unused index, plate or not. This one is
-- kept for exactly that question, and only for rows with a plate.
DROP INDEX holding_reservations_by_plate;
CREATE INDEX arriving_reservations_by_plate ON reservations(lot_id, plate, start_at)
    WHERE status = 'active' AND plate IS NOT NULL;
