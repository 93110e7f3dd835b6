-- A gate that reads a plate asks for the lot's `active` reservation of that plate starting about
-- now (`store::reservations::arriving_by_plate`); nothing else reads reservations by plate. The
-- index kept for it held every holding reservation, plate or not, led by the lot: when the
-- statistics said a lot had no holds (gathered before its first bookings: a new lot, or
-- `bench api`'s booking lot when autovacuum analyzed the table after the set-up), the planner
-- took it for the free-spot query's "holding reservations of this lot" and read every hold of
-- the lot (2–3 ms for 8,000, where the lot-and-window index reads the ~300 overlapping the window
-- in 0.4 ms; `bench api` then booked at 60 % of its usual rate), and every booking without a
-- plate paid to insert into it. As on SQLite (its migration 0020), the index now holds only
-- what the gate asks for: active reservations with a plate, by lot, plate and start.
DROP INDEX holding_reservations_by_plate;
CREATE INDEX arriving_reservations_by_plate ON reservations(lot_id, plate, start_at)
    WHERE status = 'active' AND plate IS NOT NULL;
