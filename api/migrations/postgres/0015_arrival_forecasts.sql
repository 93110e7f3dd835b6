-- The chance of a free spot per lot and coming hour, with the occupancy forecast it comes from:
-- written by the forecast-training job, read by GET /v1/lots/{id}/arrival.
CREATE TABLE arrival_forecasts (
    lot_id BIGINT NOT NULL REFERENCES lots(id),
    hour_start BIGINT NOT NULL,
    occupancy DOUBLE PRECISION NOT NULL,
    free_chance DOUBLE PRECISION NOT NULL,
    trained_at BIGINT NOT NULL,
    PRIMARY KEY (lot_id, hour_start)
);
