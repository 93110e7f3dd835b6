-- Whether cars may use this lot's EV spots (as their last choice). By default an EV spot takes
-- only EVs.
ALTER TABLE lots ADD COLUMN ev_spots_open_to_cars BIGINT NOT NULL DEFAULT 0;

-- The relay reads the rows it has not published yet, in order: keep them findable without a
-- scan of the whole outbox.
CREATE INDEX outbox_unpublished ON outbox(id) WHERE published_at IS NULL;
