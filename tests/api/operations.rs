//! Operations: logs, request ids, metrics.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, captured_logs, service_key, spawn_app, spawn_app_with, test_settings,
};

#[tokio::test]
async fn logs_never_contain_passwords_secrets_or_whole_tokens() {
    let app = spawn_app().await;
    let password = format!("pw-{}-secret", uuid::Uuid::new_v4().simple());
    let wrong_password = format!("wrong-{}-guess", uuid::Uuid::new_v4().simple());
    let request_id = format!("ops-log-{}", uuid::Uuid::new_v4().simple());
    app.create_tenant("acme").await;
    let created = app
        .client
        .post(app.url("/v1/tenants/acme/users"))
        .bearer_auth(service_key())
        .json(&json!({ "username": "alice", "password": password }))
        .send()
        .await
        .unwrap();
    let user_id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let failed = app.login("acme", "alice", &wrong_password).await;
    assert_eq!(failed.status(), 401);
    let login = app
        .client
        .post(app.url("/v1/tenants/acme/login"))
        .header("X-Request-Id", &request_id)
        .json(&json!({ "username": "alice", "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        login.headers()["x-request-id"],
        request_id.as_str(),
        "echoed back"
    );
    let tokens: Value = login.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(app.me(&access).await.status(), 200);
    assert_eq!(app.me(&format!("{access}x")).await.status(), 401);
    assert_eq!(app.introspect(&access).await.status(), 200);
    let refreshed: Value = app
        .client
        .post(app.url("/v1/token/refresh"))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access2 = refreshed["access_token"].as_str().unwrap().to_owned();
    let refresh2 = refreshed["refresh_token"].as_str().unwrap().to_owned();
    let secret = app
        .secret_of(tenant_jwt::types::ids::UserId::parse(&user_id).unwrap(), 1)
        .await;
    let revoked = app
        .client
        .post(app.url("/v1/revoke"))
        .bearer_auth(service_key())
        .form(&[("token", refresh2.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);

    let logs = captured_logs();
    // The capture is live and this test's requests are in it, each line of a
    // request carrying its id.
    assert!(logs.contains(&request_id), "the request id is logged");
    assert!(
        logs.lines().any(|l| l.contains("login succeeded")
            && l.contains(&user_id)
            && l.contains(&request_id)),
        "the login line names its request"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("wrong_password") && l.contains(&user_id)),
        "failure reasons are logged"
    );

    let signature = |token: &str| token.rsplit('.').next().unwrap().to_owned();
    let hex: String = secret.expose().iter().map(|b| format!("{b:02x}")).collect();
    let master_key = match &app.settings.master_key {
        tenant_jwt::config::MasterKeySource::Inline(key) => key.to_string(),
        tenant_jwt::config::MasterKeySource::File(_) => unreachable!("tests use an inline key"),
    };
    for (what, needle) in [
        ("password", password.clone()),
        ("wrong password", wrong_password.clone()),
        ("access token", access.clone()),
        ("access token signature", signature(&access)),
        ("refreshed access token", access2.clone()),
        ("refresh token", refresh.clone()),
        ("second refresh token", refresh2.clone()),
        ("service key", service_key()),
        ("master key", master_key),
        ("secret (hex)", hex),
        ("secret (base64)", STANDARD.encode(secret.expose())),
        (
            "secret (base64url)",
            URL_SAFE_NO_PAD.encode(secret.expose()),
        ),
    ] {
        assert!(!logs.contains(&needle), "the logs contain the {what}");
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let get = |id: Option<&str>| {
        let mut request = app.client.get(app.url("/healthz"));
        if let Some(id) = id {
            request = request.header("X-Request-Id", id);
        }
        request.send()
    };
    let generated = get(None).await.unwrap().headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    assert_eq!(
        get(Some("abc-123.x:y_z")).await.unwrap().headers()["x-request-id"],
        "abc-123.x:y_z"
    );
    let replaced = get(Some("has spaces; and more")).await.unwrap().headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        uuid::Uuid::parse_str(&replaced).is_ok(),
        "a malformed id is replaced: {replaced}"
    );
}

/// The value of the sample of `name` whose labels include all of `labels`.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

async fn scrape(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let mut settings = test_settings();
    settings.limits.login_per_account_ip = 3;
    let app = spawn_app_with(settings).await;
    let before = scrape(&app).await;
    assert_eq!(sample(&before, "tenant_jwt_logins_total", &[]), 0.0);

    let m = app.tenant_with_user("acme", "alice").await; // one successful login
    assert_eq!(app.login("acme", "alice", "wrong").await.status(), 401);
    assert_eq!(app.login("acme", "nobody", "wrong").await.status(), 401);
    assert_eq!(app.login("acme", "alice", "wrong").await.status(), 401);
    assert_eq!(
        app.login("acme", "alice", "wrong").await.status(),
        429,
        "alice's 4th: 3 per account and address"
    );
    assert_eq!(app.me(&m.token).await.status(), 200);
    assert_eq!(app.me(&m.token).await.status(), 200);
    let cut = m.token.rfind('.').unwrap() + 1;
    let flipped = if m.token[cut..].starts_with('A') {
        'B'
    } else {
        'A'
    };
    let tampered = format!("{}{flipped}{}", &m.token[..cut], &m.token[cut + 1..]);
    assert_eq!(app.me(&tampered).await.status(), 401);
    let rotated = app
        .client
        .post(app.url(&format!("/v1/tenants/acme/users/{}/rotate-secret", m.id)))
        .bearer_auth(service_key())
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    assert_eq!(app.me(&m.token).await.status(), 401);

    let odd = app
        .client
        .request("FROBNICATE".parse().unwrap(), app.url("/v1/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(odd.status(), 405);

    let after = scrape(&app).await;
    assert!(!after.contains("FROBNICATE"), "method labels stay bounded");
    let count = |name: &str, labels: &[(&str, &str)]| sample(&after, name, labels);
    assert_eq!(
        count(
            "tenant_jwt_http_requests_total",
            &[("method", "OTHER"), ("status", "405")]
        ),
        1.0
    );
    assert_eq!(
        count("tenant_jwt_logins_total", &[("outcome", "success")]),
        1.0
    );
    assert_eq!(
        count("tenant_jwt_logins_total", &[("outcome", "wrong_password")]),
        2.0
    );
    assert_eq!(
        count("tenant_jwt_logins_total", &[("outcome", "unknown_user")]),
        1.0
    );
    assert_eq!(
        count(
            "tenant_jwt_rate_limited_total",
            &[("limit", "login_per_account_ip")]
        ),
        1.0
    );
    assert_eq!(
        count("tenant_jwt_verifications_total", &[("outcome", "ok")]),
        2.0
    );
    assert_eq!(
        count(
            "tenant_jwt_verifications_total",
            &[("outcome", "bad_signature")]
        ),
        1.0
    );
    assert_eq!(
        count(
            "tenant_jwt_verifications_total",
            &[("outcome", "retired_generation")]
        ),
        1.0
    );
    assert_eq!(
        count("tenant_jwt_secret_rotations_total", &[("cause", "admin")]),
        1.0
    );
    let lookups = |result| {
        count(
            "tenant_jwt_key_record_cache_lookups_total",
            &[("result", result)],
        )
    };
    assert!(lookups("local_hit") + lookups("hit") >= 2.0);
    assert!(
        count(
            "tenant_jwt_key_record_cache_lookups_total",
            &[("result", "miss")]
        ) >= 1.0
    );
    assert!(count("tenant_jwt_key_record_postgres_loads_total", &[]) >= 1.0);
    let me_ok = [("route", "/v1/me"), ("method", "GET"), ("status", "200")];
    assert_eq!(count("tenant_jwt_http_requests_total", &me_ok), 2.0);
    assert_eq!(
        count("tenant_jwt_http_request_duration_seconds_count", &me_ok),
        2.0
    );
    let user_route = [
        (
            "route",
            "/v1/tenants/{tenant}/users/{user_id}/rotate-secret",
        ),
        ("status", "200"),
    ];
    assert_eq!(
        count("tenant_jwt_http_requests_total", &user_route),
        1.0,
        "routes are patterns, not raw paths"
    );
    assert!(after.contains("tenant_jwt_db_pool_connections"));
    assert!(count("tenant_jwt_db_pool_connections", &[]) >= 1.0);
    assert!(after.contains("tenant_jwt_db_pool_waiting"));
}
