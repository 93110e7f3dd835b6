-- The relay's progress kept apart from the events: a row's id is in `outbox_unpublished` from the
-- moment it is appended (the trigger, in the appending transaction) until Kafka acknowledged it
-- (the relay deletes it). Marking a round published used to rewrite each ~400-byte outbox row
-- and its entry in a partial index; deleting a run of ids from a table of ids alone costs a
-- twentieth of that.
DROP INDEX outbox_unpublished;
CREATE TABLE outbox_unpublished (id BIGINT PRIMARY KEY);
INSERT INTO outbox_unpublished (id) SELECT id FROM outbox WHERE published_at IS NULL;
CREATE FUNCTION outbox_unpublished_on_append() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_unpublished (id) VALUES (NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_unpublished_on_append AFTER INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_unpublished_on_append();
ALTER TABLE outbox DROP COLUMN published_at;
