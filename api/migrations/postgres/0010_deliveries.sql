-- Drivers' channel choices (in-app is always on).
CREATE TABLE notification_preferences (
    user_id TEXT PRIMARY KEY,
    email BIGINT NOT NULL,
    push BIGINT NOT NULL
);

-- One row per message and channel: a message is never sent twice on a channel. Pending rows
-- are retried at next_attempt_at with exponential backoff until delivered or failed.
CREATE TABLE notification_deliveries (
    notification_id BIGINT NOT NULL REFERENCES notification_outbox(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    delivered_at BIGINT,
    PRIMARY KEY (notification_id, channel)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries(next_attempt_at) WHERE status = 'pending';
