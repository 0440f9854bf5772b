-- Security-event webhooks (Standard Webhooks): a tenant's endpoints, the
-- messages written in the same transaction as the change they report, and
-- each delivery attempt.

CREATE TABLE webhook_endpoints (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url             text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    -- Event types, or '*' for every one.
    events          text[] NOT NULL CHECK (cardinality(events) BETWEEN 1 AND 50),
    description     text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    disabled        boolean NOT NULL DEFAULT false,
    -- The signing secret (32 bytes), sealed under the master key with the
    -- endpoint id as associated data.
    secret          bytea NOT NULL,
    -- The secret before the last rotation: it signs too until previous_until.
    previous_secret bytea,
    previous_until  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((previous_secret IS NULL) = (previous_until IS NULL))
);

CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, id);

CREATE TABLE webhook_messages (
    -- UUIDv7; on the wire `msg_` and its 32 hex digits (`webhook-id`).
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type      text NOT NULL,
    -- The exact bytes signed and sent.
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    -- Attempts made in all; the retry schedule's position in this round
    -- (a manual retry starts a new round).
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    step            integer NOT NULL DEFAULT 0 CHECK (step >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- Whoever claimed the next attempt, and until when; another instance
    -- takes the message over once the lease has run out.
    lease_id        uuid,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);

CREATE INDEX webhook_messages_due ON webhook_messages (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_messages_endpoint ON webhook_messages (endpoint_id, id);

CREATE TABLE webhook_attempts (
    message_id      uuid NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    attempt         integer NOT NULL CHECK (attempt > 0),
    attempted_at    timestamptz NOT NULL,
    -- The receiver's status, or NULL with an error (timeout, refused...).
    status_code     integer,
    error           text,
    duration_ms     integer NOT NULL CHECK (duration_ms >= 0),
    PRIMARY KEY (message_id, attempt)
);
