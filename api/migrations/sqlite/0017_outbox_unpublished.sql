-- The relay's progress kept apart from the events: a row's id is in `outbox_unpublished` from the
-- moment it is appended (the trigger, in the appending transaction) until Kafka acknowledged it
-- (the relay deletes it). Marking a round published used to rewrite each ~400-byte outbox row
-- and its entry in a partial index; deleting a run of ids from a table of ids alone costs a
-- twentieth of that.
DROP INDEX outbox_unpublished;
CREATE TABLE outbox_unpublished (id INTEGER PRIMARY KEY);
INSERT INTO outbox_unpublished (id) SELECT id FROM outbox WHERE published_at IS NULL;
CREATE TRIGGER outbox_unpublished_on_append AFTER INSERT ON outbox
BEGIN
    INSERT INTO outbox_unpublished (id) VALUES (new.id);
END;
ALTER TABLE outbox DROP COLUMN published_at;
