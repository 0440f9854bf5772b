ALTER TABLE audit_events DROP CONSTRAINT audit_events_actor_kind_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_actor_kind_check
    CHECK (actor_kind IN ('service', 'user', 'operator'));
DROP TABLE refresh_tokens;
DROP TABLE sessions;
