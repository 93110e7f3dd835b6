-- Messages for drivers waiting to be delivered by the notification service. A message is written
-- once per deduplication key (e.g. one arrival push per driver, lot and hour), however often
-- the job that proposes it runs.
CREATE TABLE notification_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    dedup_key TEXT NOT NULL UNIQUE,
    lot_id INTEGER,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX notification_outbox_unsent ON notification_outbox(id) WHERE sent_at IS NULL;
CREATE INDEX notification_outbox_user ON notification_outbox(user_id, id);
