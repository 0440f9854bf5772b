// Diesel table definitions for migrations/ (kept in step by hand; see diesel.toml).

diesel::table! {
    tenants (id) {
        id -> Uuid,
        slug -> Text,
        name -> Text,
        created_at -> Timestamptz,
        authz_version -> Int8,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        record_version -> Int8,
        created_at -> Timestamptz,
        disabled_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    user_secrets (user_id, generation) {
        user_id -> Uuid,
        generation -> Int8,
        ciphertext -> Bytea,
        created_at -> Timestamptz,
        retired_at -> Nullable<Timestamptz>,
        valid_until -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    master_key_check (id) {
        id -> Bool,
        ciphertext -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(users -> tenants (tenant_id));
diesel::joinable!(user_secrets -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    tenants,
    users,
    user_secrets,
    master_key_check,
    audit_events,
    sessions,
    refresh_tokens,
    service_credentials,
    roles,
    user_roles,
    webhook_endpoints,
    webhook_messages,
    webhook_attempts
);

diesel::table! {
    audit_events (id) {
        id -> Uuid,
        tenant_id -> Nullable<Uuid>,
        actor_kind -> Text,
        actor_id -> Text,
        action -> Text,
        target_user_id -> Nullable<Uuid>,
        details -> Jsonb,
        request_id -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
        access_valid_until -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        revoke_reason -> Nullable<Text>,
        last_used_at -> Nullable<Timestamptz>,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Bytea,
        session_id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        spent_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(audit_events -> tenants (tenant_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));

diesel::table! {
    key_record_changes (id) {
        id -> Int8,
        user_id -> Uuid,
        version -> Int8,
        deleted -> Bool,
        created_at -> Timestamptz,
        published_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    service_credentials (id) {
        id -> Uuid,
        name -> Text,
        tenant_id -> Nullable<Uuid>,
        scopes -> Array<Text>,
        key_digest -> Bytea,
        created_at -> Timestamptz,
        expires_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        created_by_kind -> Text,
        created_by_id -> Text,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    service_credential_changes (id) {
        id -> Bool,
        revision -> Int8,
    }
}

diesel::table! {
    roles (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        description -> Text,
        permissions -> Array<Text>,
        revision -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    user_roles (user_id, role_id) {
        user_id -> Uuid,
        role_id -> Uuid,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        url -> Text,
        events -> Array<Text>,
        description -> Text,
        disabled -> Bool,
        secret -> Bytea,
        previous_secret -> Nullable<Bytea>,
        previous_until -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_messages (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        endpoint_id -> Uuid,
        event_type -> Text,
        body -> Text,
        status -> Text,
        attempts -> Int4,
        step -> Int4,
        next_attempt_at -> Timestamptz,
        lease_id -> Nullable<Uuid>,
        lease_until -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_attempts (message_id, attempt) {
        message_id -> Uuid,
        attempt -> Int4,
        attempted_at -> Timestamptz,
        status_code -> Nullable<Int4>,
        error -> Nullable<Text>,
        duration_ms -> Int4,
    }
}

diesel::joinable!(service_credentials -> tenants (tenant_id));
diesel::joinable!(roles -> tenants (tenant_id));
diesel::joinable!(user_roles -> roles (role_id));
diesel::joinable!(user_roles -> users (user_id));
diesel::joinable!(webhook_endpoints -> tenants (tenant_id));
diesel::joinable!(webhook_messages -> webhook_endpoints (endpoint_id));
diesel::joinable!(webhook_attempts -> webhook_messages (message_id));
