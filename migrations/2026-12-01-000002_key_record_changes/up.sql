-- A transactional outbox of key-record changes. Every change of a user's key
-- record bumps users.record_version (or deletes the user); the trigger below
-- writes a row naming the user and the new version in the same transaction,
-- so a committed change is never without one. After the commit, the instance
-- that made the change publishes it (Redis record, then the announcement) and
-- marks the row published; every instance publishes rows left unpublished
-- (their instance died, or Redis failed) and, after a Redis failover, those
-- published within the last minute again.
CREATE TABLE key_record_changes (
    id            bigserial   PRIMARY KEY,
    user_id       uuid        NOT NULL,
    -- The record version the change made; for a deletion, the tombstone
    -- version (above any record of the user that could be written back).
    version       bigint      NOT NULL,
    deleted       boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);

-- The drain reads the unpublished rows oldest first; the replay and the
-- pruning read published rows by time. Both stay small with a million users.
CREATE INDEX key_record_changes_unpublished
    ON key_record_changes (created_at) WHERE published_at IS NULL;
CREATE INDEX key_record_changes_published
    ON key_record_changes (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX key_record_changes_user ON key_record_changes (user_id, version);

CREATE FUNCTION key_record_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO key_record_changes (user_id, version, deleted)
        VALUES (OLD.id, OLD.record_version + 1, true);
        RETURN OLD;
    END IF;
    IF NEW.record_version <> OLD.record_version THEN
        INSERT INTO key_record_changes (user_id, version) VALUES (NEW.id, NEW.record_version);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER key_record_changed
    AFTER UPDATE OF record_version OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION key_record_changed();
