-- Core schema: tenants, their users, and each user's signing secrets.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9-]{1,63}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    username        text NOT NULL CHECK (username ~ '^[A-Za-z0-9._@+-]{1,128}$'),
    password_hash   text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    role            text NOT NULL CHECK (role IN ('member', 'admin')),
    -- Bumped on every change that alters the user's cached key record, so a
    -- stale cache write-back can never overwrite a newer record.
    record_version  bigint NOT NULL DEFAULT 1 CHECK (record_version > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    disabled_at     timestamptz
);

-- Usernames are unique per tenant, case-insensitively. The character set is
-- ASCII-only, so lower() means the same thing under every collation.
CREATE UNIQUE INDEX users_tenant_username_key ON users (tenant_id, lower(username));

CREATE TABLE user_secrets (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    generation  bigint NOT NULL CHECK (generation > 0),
    -- XChaCha20-Poly1305: 24-byte nonce || ciphertext || 16-byte tag, with
    -- (user_id, generation) as associated data.
    ciphertext  bytea NOT NULL CHECK (length(ciphertext) = 24 + 32 + 16),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- NULL while this is the user's current generation.
    retired_at  timestamptz,
    -- For a retired generation: tokens signed with it are accepted until then.
    valid_until timestamptz,
    PRIMARY KEY (user_id, generation),
    CHECK (valid_until IS NULL OR retired_at IS NOT NULL)
);

-- At most one current generation per user...
CREATE UNIQUE INDEX user_secrets_one_current ON user_secrets (user_id) WHERE retired_at IS NULL;

-- ...and at least one, checked when the transaction commits so a rotation can
-- retire the old generation and insert the new one in either order.
CREATE FUNCTION assert_one_current_secret(uid uuid) RETURNS void AS $$
DECLARE
    current_count integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM users WHERE id = uid) THEN
        RETURN;
    END IF;
    SELECT count(*) INTO current_count FROM user_secrets WHERE user_id = uid AND retired_at IS NULL;
    IF current_count <> 1 THEN
        RAISE EXCEPTION 'user % must have exactly one current secret generation, has %', uid, current_count
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION users_check_current_secret() RETURNS trigger AS $$
BEGIN
    PERFORM assert_one_current_secret(NEW.id);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION user_secrets_check_current_secret() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM assert_one_current_secret(OLD.user_id);
    ELSE
        IF TG_OP = 'UPDATE' AND NEW.user_id <> OLD.user_id THEN
            RAISE EXCEPTION 'user_secrets.user_id cannot change' USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        PERFORM assert_one_current_secret(NEW.user_id);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER users_one_current_secret
    AFTER INSERT ON users
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION users_check_current_secret();

CREATE CONSTRAINT TRIGGER user_secrets_one_current_secret
    AFTER INSERT OR UPDATE OR DELETE ON user_secrets
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION user_secrets_check_current_secret();

-- A value encrypted under the master key, so that starting with the wrong key
-- fails at once instead of turning every verification into a 401.
CREATE TABLE master_key_check (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    ciphertext  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
