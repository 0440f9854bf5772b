-- Sessions (refresh-token families) and their refresh tokens.

CREATE TABLE sessions (
    id                  uuid PRIMARY KEY,          -- the `sid` claim of access tokens
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at          timestamptz NOT NULL DEFAULT now(),
    -- The latest `exp` of an access token issued in this session: until then a
    -- revocation of the session must stay in the user's key record.
    access_valid_until  timestamptz NOT NULL,
    revoked_at          timestamptz,
    revoke_reason       text
);

CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE refresh_tokens (
    -- SHA-256 of the token: the token has 256 random bits, so a fast hash is
    -- enough and a lookup by hash leaks nothing through timing.
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id  uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    -- Set when exchanged; a spent token presented again is a theft signal, so
    -- spent rows are kept until they expire.
    spent_at    timestamptz,
    revoked_at  timestamptz
);

CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_user_id ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

-- Reuse detection acts on its own: the `system` actor.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_actor_kind_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_actor_kind_check
    CHECK (actor_kind IN ('service', 'user', 'operator', 'system'));
