-- Every administrative action, written in the same transaction as the change.
-- Never a secret or a password.
CREATE TABLE audit_events (
    id              uuid PRIMARY KEY,          -- UUIDv7: time-ordered, the pagination key
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    actor_kind      text NOT NULL CHECK (actor_kind IN ('service', 'user', 'operator')),
    actor_id        text NOT NULL,
    action          text NOT NULL,
    -- No foreign key: the event outlives a deleted user.
    target_user_id  uuid,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_events_tenant_id ON audit_events (tenant_id, id);
