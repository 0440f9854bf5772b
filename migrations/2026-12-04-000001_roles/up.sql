-- Live roles and permissions: each tenant's roles, the permission patterns
-- they grant, and which users hold them. Permissions are resolved from these
-- rows at check time, never put in tokens.

-- Grows by one with each change of the tenant's roles or assignments, in the
-- change's own transaction (the tenant row's lock orders them): a check that
-- asks for `min_version` is never answered from an older view.
ALTER TABLE tenants ADD COLUMN authz_version bigint NOT NULL DEFAULT 0
    CHECK (authz_version >= 0);

CREATE TABLE roles (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    description  text NOT NULL DEFAULT '' CHECK (char_length(description) <= 500),
    -- Patterns as written (`invoices:approve`, `invoices:*`, `*`), sorted,
    -- each once; checked by the service's grammar before they get here.
    permissions  text[] NOT NULL CHECK (cardinality(permissions) <= 200),
    -- Grows with each change: the role's ETag.
    revision     bigint NOT NULL DEFAULT 1 CHECK (revision > 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE user_roles (
    user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id  uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role ON user_roles (role_id);
