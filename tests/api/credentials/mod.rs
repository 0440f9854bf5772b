//! Scoped service credentials: stored as digests, as narrow as their scopes
//! and tenant, revoked everywhere within a second, never shown twice. Tenant
//! admins managing them: `tenant_admins`; storage, logs and the CLI: `storage`.

mod storage;
mod tenant_admins;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, service_key, spawn_app, spawn_app_with, test_settings};

/// POSTs `body` to `path` as `bearer`; the status and the JSON body.
async fn post(app: &TestApp, bearer: &str, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A new credential, created with a root key; its JSON (with `key`).
async fn credential(app: &TestApp, tenant: Option<&str>, scopes: &[&str]) -> Value {
    let body = json!({ "name": "test credential", "tenant": tenant, "scopes": scopes });
    let (status, created) = post(app, &service_key(), "/v1/service-credentials", body).await;
    assert_eq!(status, 201, "creating a credential: {created}");
    created
}

fn key_in(created: &Value) -> String {
    created["key"].as_str().unwrap().to_owned()
}

/// DELETEs credential `id` (a JSON string, or any id) as `bearer`; the status.
async fn revoke(app: &TestApp, bearer: &str, id: impl std::fmt::Display) -> u16 {
    let id = id.to_string();
    let path = format!("/v1/service-credentials/{}", id.trim_matches('"'));
    let response = app
        .client
        .delete(app.url(&path))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

async fn introspect_with(app: &TestApp, key: &str, token: &str) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/v1/introspect"))
        .bearer_auth(key)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until the instance trusts its cached credentials (it has read the
/// revision counter), so lookups are cached from here on.
async fn wait_until_current(app: &TestApp) {
    for _ in 0..100 {
        if app
            .counter("tenant_jwt_service_credential_cache_fresh")
            .await
            == Some(1.0)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the credential cache never became current");
}

#[tokio::test]
async fn a_tenant_credential_with_introspect_can_do_nothing_else_and_sees_nothing_of_another_tenant()
 {
    let app = spawn_app().await;
    let alice = app.tenant_with_user("acme", "alice").await;
    let bob = app.tenant_with_user("beta", "bob").await;
    let created = credential(&app, Some("acme"), &["introspect"]).await;
    assert_eq!(created["tenant"], "acme");
    assert_eq!(created["scopes"], json!(["introspect"]));
    let key = key_in(&created);
    assert!(key.starts_with("tjs_") && key.len() == 47, "{key}");

    let (status, own) = introspect_with(&app, &key, &alice.token).await;
    assert_eq!((status, &own["active"]), (200, &json!(true)), "{own}");
    let (status, other) = introspect_with(&app, &key, &bob.token).await;
    assert_eq!(status, 200);
    assert_eq!(other, json!({ "active": false }), "another tenant's token");

    // Every other route: 403 insufficient_scope naming the scope it needs.
    // Bodies are valid, so the answer cannot be a body's 400 (extractors
    // run concurrently: a body error can come before a credential lookup).
    let user = alice.id.to_string();
    let new_user = json!({ "username": "newbie", "password": crate::helpers::PASSWORD });
    let new_credential = json!({ "name": "x", "scopes": ["introspect"] });
    let routes: Vec<(&str, String, &str, Value)> = vec![
        (
            "GET",
            "/v1/tenants/acme/users".into(),
            "users:read",
            json!({}),
        ),
        (
            "POST",
            "/v1/tenants/acme/users".into(),
            "users:write",
            new_user,
        ),
        (
            "GET",
            format!("/v1/tenants/acme/users/{user}"),
            "users:read",
            json!({}),
        ),
        (
            "PATCH",
            format!("/v1/tenants/acme/users/{user}"),
            "users:write",
            json!({ "role": "member" }),
        ),
        (
            "DELETE",
            format!("/v1/tenants/acme/users/{user}"),
            "users:write",
            json!({}),
        ),
        (
            "POST",
            format!("/v1/tenants/acme/users/{user}/rotate-secret"),
            "secrets:rotate",
            json!({}),
        ),
        (
            "GET",
            format!("/v1/tenants/acme/users/{user}/sessions"),
            "users:read",
            json!({}),
        ),
        (
            "POST",
            "/v1/tenants/acme/rotate-secrets".into(),
            "secrets:rotate",
            json!({}),
        ),
        (
            "GET",
            "/v1/tenants/acme/audit-events".into(),
            "audit:read",
            json!({}),
        ),
        (
            "GET",
            "/v1/tenants/acme/service-credentials".into(),
            "credentials:write",
            json!({}),
        ),
        (
            "POST",
            "/v1/tenants/acme/service-credentials".into(),
            "credentials:write",
            new_credential.clone(),
        ),
        (
            "GET",
            "/v1/service-credentials".into(),
            "credentials:write",
            json!({}),
        ),
        (
            "POST",
            "/v1/service-credentials".into(),
            "credentials:write",
            new_credential,
        ),
        ("GET", "/v1/audit-events".into(), "audit:read", json!({})),
        (
            "POST",
            "/v1/tenants".into(),
            "tenants:write",
            json!({ "slug": "gamma", "name": "Gamma" }),
        ),
        (
            "POST",
            "/v1/revoke".into(),
            "revoke",
            json!({ "token": "x" }),
        ),
    ];
    for (method, path, scope, body) in routes {
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(&path))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{method} {path}");
        assert_eq!(
            response.headers()["www-authenticate"],
            format!(r#"Bearer realm="tenant-jwt", error="insufficient_scope", scope="{scope}""#)
                .as_str(),
            "{method} {path}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "insufficient_scope", "{method} {path}");
    }
    assert_eq!(app.me(&key).await.status(), 401, "a key is no access token");
    assert!(
        app.counter("tenant_jwt_service_auth_refusals_total{reason=\"insufficient_scope\"}")
            .await
            .unwrap()
            >= 16.0
    );

    // With the scope, another tenant answers exactly as a made-up one.
    let reader = key_in(&credential(&app, Some("acme"), &["users:read"]).await);
    let read = |path: &'static str| {
        let (app, reader) = (&app, &reader);
        async move {
            let response = app
                .client
                .get(app.url(path))
                .bearer_auth(reader)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(read("/v1/tenants/acme/users").await.0, 200);
    let (beta, made_up) = (
        read("/v1/tenants/beta/users").await,
        read("/v1/tenants/made-up/users").await,
    );
    assert_eq!(beta.0, 404);
    assert_eq!(beta, made_up, "another tenant looks like a made-up one");
    let bob_path = format!("/v1/tenants/beta/users/{}", bob.id);
    let response = app
        .client
        .get(app.url(&bob_path))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_tenant_credential_revokes_only_its_own_tenants_tokens() {
    let app = spawn_app().await;
    let alice = app.tenant_with_user("acme", "alice").await;
    let bob = app.tenant_with_user("beta", "bob").await;
    let revoker = key_in(&credential(&app, Some("acme"), &["revoke"]).await);
    for member in [&bob, &alice] {
        let response = app
            .client
            .post(app.url("/v1/revoke"))
            .bearer_auth(&revoker)
            .form(&[("token", member.token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "RFC 7009: 200 either way");
    }
    assert_eq!(app.me(&bob.token).await.status(), 200, "beta's token lives");
    assert!(
        app.me_becomes(&alice.token, 401).await,
        "acme's token is revoked"
    );
}

#[tokio::test]
async fn a_revoked_credential_fails_on_every_instance_within_a_second() {
    let settings = test_settings();
    let a = spawn_app_with(settings.clone()).await;
    let b = spawn_app_with(settings).await;
    let alice = a.tenant_with_user("acme", "alice").await;
    let created = credential(&a, Some("acme"), &["introspect"]).await;
    let key = key_in(&created);
    wait_until_current(&b).await;
    for app in [&a, &b] {
        assert_eq!(introspect_with(app, &key, &alice.token).await.0, 200);
    }
    // Served from b's cache once b has seen the creation (a use that raced
    // the counter's move is read again).
    let loads = || b.counter("tenant_jwt_service_credential_loads_total{result=\"found\"}");
    let mut cached = false;
    for _ in 0..20 {
        let before = loads().await;
        assert_eq!(introspect_with(&b, &key, &alice.token).await.0, 200);
        if loads().await == before {
            cached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cached, "every use on b read Postgres");

    // Its use is noted (coarsely: at most once a minute), off the request.
    let mut last_used = Value::Null;
    for _ in 0..50 {
        let listed = a.service_get("/v1/service-credentials").await;
        last_used = listed["credentials"][0]["last_used_at"].clone();
        if !last_used.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(last_used.is_string(), "last_used_at never set");

    assert_eq!(revoke(&a, &service_key(), &created["id"]).await, 204);
    let revoked = Instant::now();
    assert_eq!(
        introspect_with(&a, &key, &alice.token).await.0,
        401,
        "at once where revoked"
    );
    loop {
        let (status, _) = introspect_with(&b, &key, &alice.token).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "b still accepts it after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = revoked.elapsed();
    eprintln!("revocation seen by the other instance after {took:?}");

    // Revoked: gone from the list; a second DELETE (a retry) succeeds too,
    // a made-up id is not found.
    let listed = a.service_get("/v1/service-credentials").await;
    assert_eq!(listed["credentials"], json!([]), "{listed}");
    assert_eq!(revoke(&a, &service_key(), &created["id"]).await, 204);
    let made_up = uuid::Uuid::now_v7();
    assert_eq!(revoke(&a, &service_key(), made_up).await, 404);
}

#[tokio::test]
async fn an_expired_credential_fails_everywhere() {
    let settings = test_settings();
    let a = spawn_app_with(settings.clone()).await;
    let b = spawn_app_with(settings).await;
    let alice = a.tenant_with_user("acme", "alice").await;
    let body = json!({ "name": "short-lived", "tenant": "acme", "scopes": ["introspect"], "expires_in": 2 });
    let (status, created) = post(&a, &service_key(), "/v1/service-credentials", body).await;
    assert_eq!(status, 201);
    let expires_at: chrono::DateTime<chrono::Utc> =
        created["expires_at"].as_str().unwrap().parse().unwrap();
    let key = key_in(&created);
    for app in [&a, &b] {
        assert_eq!(introspect_with(app, &key, &alice.token).await.0, 200);
    }
    let wait = (expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    for app in [&a, &b] {
        assert_eq!(introspect_with(app, &key, &alice.token).await.0, 401);
        assert_eq!(
            app.counter("tenant_jwt_service_auth_refusals_total{reason=\"expired_credential\"}")
                .await,
            Some(1.0)
        );
    }
}

#[tokio::test]
async fn unknown_keys_are_remembered_and_count_against_the_invalid_bearer_limit() {
    let mut settings = test_settings();
    settings.limits.failed_verifications_per_ip = 6;
    let app = spawn_app_with(settings).await;
    let alice = app.tenant_with_user("acme", "alice").await;
    wait_until_current(&app).await;
    let made_up = format!("tjs_{}", "A".repeat(43));
    for _ in 0..3 {
        assert_eq!(introspect_with(&app, &made_up, &alice.token).await.0, 401);
    }
    assert_eq!(
        app.counter("tenant_jwt_service_credential_loads_total{result=\"not_found\"}")
            .await,
        Some(1.0),
        "one Postgres lookup for three uses of one unknown key"
    );
    // Not even shaped like a key: refused with no lookup at all.
    assert_eq!(
        introspect_with(&app, "not-a-key", &alice.token).await.0,
        401
    );
    assert_eq!(
        app.counter("tenant_jwt_service_credential_loads_total{result=\"not_found\"}")
            .await,
        Some(1.0)
    );
    let mut statuses = Vec::new();
    for n in 0..4 {
        let other = format!("tjs_{}{n}", "B".repeat(42));
        statuses.push(introspect_with(&app, &other, &alice.token).await.0);
    }
    assert_eq!(
        statuses,
        [401, 401, 429, 429],
        "4 invalid keys, then the limit"
    );
    assert_eq!(
        introspect_with(&app, &service_key(), &alice.token).await.0,
        429,
        "the address is throttled, whatever it presents"
    );
}

/// GETs `path` as `bearer`: 200 and its JSON body.
async fn get(app: &TestApp, bearer: &str, path: &str) -> Value {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}
