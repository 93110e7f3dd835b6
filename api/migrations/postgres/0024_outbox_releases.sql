-- A booking the availability index finds no spot for is refused without reading every spot of
-- the lot when no change that frees a spot of the lot was recorded since the index read it
-- (`Lots::no_spot_is_the_stores`): this index answers that question by the lot and position,
-- over the few events that free spots. Its list is `RELEASING_EVENTS`
-- (`api/src/services/lots/availability.rs`); the query names the same list, so the planner
-- can use it.
CREATE INDEX outbox_releases ON outbox (lot_id, id)
    WHERE event_type IN ('reservation_modified', 'reservation_cancelled', 'reservation_no_show',
                         'exit', 'lot_capacity_changed', 'monthly_pass_purchased',
                         'monthly_pass_renewed', 'monthly_pass_ended');
