-- Service credentials managed over HTTP: each is a name, an optional tenant,
-- scopes and an optional expiry. The key itself is never stored: only its
-- SHA-256 (the key is 256 random bits, so the digest cannot be reversed).
CREATE TABLE service_credentials (
    id               uuid PRIMARY KEY,          -- UUIDv7: the pagination key
    name             text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    -- NULL: root level (every tenant).
    tenant_id        uuid REFERENCES tenants (id) ON DELETE CASCADE,
    scopes           text[] NOT NULL,
    key_digest       bytea NOT NULL UNIQUE CHECK (octet_length(key_digest) = 32),
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz,
    -- Coarse: written at most once a minute.
    last_used_at     timestamptz,
    created_by_kind  text NOT NULL,
    created_by_id    text NOT NULL,
    -- Revoked credentials stay (their audit events name them); none is listed.
    revoked_at       timestamptz
);

CREATE INDEX service_credentials_live ON service_credentials (tenant_id, id)
    WHERE revoked_at IS NULL;

-- One row counting every change that authentication must see. Each instance
-- reads it several times a second and forgets its cached credentials when it
-- moves: Postgres, not Redis, carries revocation, so no crash can lose it.
-- The row lock orders the changes, so the count only grows in commit order.
CREATE TABLE service_credential_changes (
    id        boolean PRIMARY KEY DEFAULT true CHECK (id),
    revision  bigint NOT NULL
);
INSERT INTO service_credential_changes (id, revision) VALUES (true, 0);

CREATE FUNCTION service_credentials_changed() RETURNS trigger AS $$
BEGIN
    UPDATE service_credential_changes SET revision = revision + 1;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER service_credentials_changed
    AFTER INSERT OR DELETE OR UPDATE OF tenant_id, scopes, key_digest, expires_at, revoked_at
    ON service_credentials
    FOR EACH STATEMENT EXECUTE FUNCTION service_credentials_changed();

-- Root-level events (credentials with no tenant) have no tenant.
ALTER TABLE audit_events ALTER COLUMN tenant_id DROP NOT NULL;
ALTER TABLE audit_events DROP CONSTRAINT audit_events_actor_kind_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_actor_kind_check
    CHECK (actor_kind IN ('service', 'user', 'operator', 'system', 'credential'));
CREATE INDEX audit_events_root ON audit_events (id) WHERE tenant_id IS NULL;
