//! Probes and the edges of the router.

use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");
}

/// An unreachable Redis is waited for (see `resilience`); a Redis URL that
/// can never work ends start-up at once, saying why.
#[tokio::test]
async fn start_up_fails_clearly_when_the_redis_url_is_unusable() {
    let mut settings = crate::helpers::test_settings();
    settings.redis.url = "memcached://127.0.0.1:6379".into();
    let error = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tenant_jwt::startup::Application::build(settings),
    )
    .await
    .expect("no waiting")
    .err()
    .expect("start-up fails");
    assert!(
        format!("{error:#}").contains("REDIS_URL is invalid"),
        "{error:#}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn_app().await;
    let missing = app.client.get(app.url("/v1/nothing")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let wrong_method = app.client.delete(app.url("/v1/me")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(
        wrong_method.json::<Value>().await.unwrap()["code"],
        "method_not_allowed"
    );
}

/// A lone Postgres (no standby) while a synchronous standby is required:
/// not ready, saying why, and the log says what to set.
#[tokio::test]
async fn readiness_requires_a_synchronous_standby_when_asked() {
    let mut settings = crate::helpers::test_settings();
    settings.database.require_sync_replication = true;
    let app = crate::helpers::spawn_app_with(settings).await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.headers().contains_key("retry-after"));
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"], "no_sync_standby", "{body}");
    assert!(
        crate::helpers::captured_logs().contains("no synchronous standby confirming commits"),
        "the reason is logged"
    );
    let member = app.tenant_with_user("acme", "alice").await;
    assert_eq!(
        app.me(&member.token).await.status(),
        200,
        "not ready is not refusing: the service still answers"
    );
}
