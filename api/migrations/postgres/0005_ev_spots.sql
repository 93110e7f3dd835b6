-- Whether cars may use this lot's EV spots (as their last choice). By default an EV spot takes
-- only EVs.
ALTER TABLE lots ADD COLUMN ev_spots_open_to_cars BIGINT NOT NULL DEFAULT 0;
