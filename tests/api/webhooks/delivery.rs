//! Delivery to a real receiver on loopback: signed the Standard Webhooks
//! way (checked by our reading and by the official library), retried on
//! the schedule, failed after it, sent again on request, stopped by 410,
//! signed under both secrets mid-rotation, and never to another tenant.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use super::receiver::Receiver;
use super::{add_endpoint, call, create_role, deliveries, officially_verified, settle, verifies};
use crate::helpers::{PASSWORD, service_key, spawn_app, spawn_app_with, test_settings};

#[tokio::test]
async fn a_change_reaches_the_receiver_signed_and_within_two_seconds() {
    let app = spawn_app().await;
    let receiver = Receiver::start(204);
    let tenant = app.create_tenant("acme").await;
    let (_, secret) = add_endpoint(&app, "acme", &receiver.url, &["*"]).await;

    let response = app
        .client
        .post(app.url("/v1/tenants/acme/users"))
        .bearer_auth(service_key())
        .json(&json!({ "username": "alice", "password": PASSWORD, "role": "member" }))
        .send()
        .await
        .unwrap();
    let answered = Instant::now();
    assert_eq!(response.status(), 201);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let user: serde_json::Value = response.json().await.unwrap();

    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1, "one message");
    let message = &received[0];
    let latency = message.at - answered;
    assert!(
        latency < Duration::from_secs(2),
        "arrived {latency:?} after the answer"
    );
    assert!(message.id.starts_with("msg_"), "{}", message.id);
    let now = chrono::Utc::now().timestamp();
    let sent: i64 = message.timestamp.parse().unwrap();
    assert!((now - sent).abs() < 30, "webhook-timestamp is seconds now");
    assert!(
        verifies(&secret, message),
        "our reading of the specification"
    );
    assert_ne!(
        officially_verified(&secret, &received),
        Some(false),
        "the official verifier"
    );

    let body = message.json();
    assert_eq!(body["type"], "user.created");
    assert_eq!(body["data"]["tenant_id"], tenant["id"]);
    assert_eq!(body["data"]["user_id"], user["id"]);
    assert_eq!(body["data"]["actor"]["kind"], "service");
    assert_eq!(body["data"]["request_id"], request_id.as_str());
    assert!(!message.body.contains(PASSWORD), "never a password");
    assert!(!message.body.contains(&secret[6..]), "never a secret");
    assert!(!message.body.contains(&service_key()), "never a key");
}

/// A receiver answering 500 gets the first attempt and one per step of the
/// schedule (here 1 s, 1 s), then the message is failed; a manual retry
/// sends it again with the same `webhook-id`.
#[tokio::test]
async fn a_failing_receiver_gets_the_scheduled_attempts_and_a_retry_delivers() {
    let app = spawn_app().await;
    let receiver = Receiver::start(500);
    app.create_tenant("acme").await;
    let (endpoint, _) = add_endpoint(&app, "acme", &receiver.url, &["role.created"]).await;
    create_role(&app, "acme", "auditor").await;

    let listed = settle(&app, "acme", &endpoint, "failed", Duration::from_secs(20)).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["status"], "failed", "{listed:?}");
    let attempts = listed[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "1 + 2 scheduled: {attempts:?}");
    assert!(attempts.iter().all(|a| a["status_code"] == 500));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let received = receiver.received();
    assert_eq!(received.len(), 3, "no attempt past the schedule");
    assert!(
        received.iter().all(|r| r.id == received[0].id),
        "one webhook-id"
    );
    let gaps: Vec<_> = received.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(850)),
        "{gaps:?}"
    );
    let message_id = listed[0]["message_id"].as_str().unwrap();
    assert_eq!(message_id, received[0].id);

    receiver.answer(200);
    let retry = format!("/v1/tenants/acme/webhooks/{endpoint}/deliveries/{message_id}/retry");
    let (status, _) = call(&app, Method::POST, &retry, None).await;
    assert_eq!(status, 202);
    let listed = settle(
        &app,
        "acme",
        &endpoint,
        "delivered",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(listed[0]["status"], "delivered");
    let received = receiver.received();
    assert_eq!(received.len(), 4);
    assert_eq!(received[3].id, message_id, "the same webhook-id");

    let (status, failed) = call(
        &app,
        Method::GET,
        &format!("/v1/tenants/acme/webhooks/{endpoint}/deliveries?status=failed"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(failed["deliveries"].as_array().unwrap().is_empty());
    let unknown = format!(
        "/v1/tenants/acme/webhooks/{endpoint}/deliveries/msg_00000000000000000000000000000000/retry"
    );
    assert_eq!(call(&app, Method::POST, &unknown, None).await.0, 404);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("tenant_jwt_webhook_attempts_total{result=\"5xx\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("tenant_jwt_webhook_deliveries_total{outcome=\"failed\"} 1"));
}

#[tokio::test]
async fn gone_disables_the_endpoint() {
    let app = spawn_app().await;
    let receiver = Receiver::start(410);
    app.create_tenant("acme").await;
    let (endpoint, _) = add_endpoint(&app, "acme", &receiver.url, &["*"]).await;
    create_role(&app, "acme", "auditor").await;
    let listed = settle(&app, "acme", &endpoint, "failed", Duration::from_secs(10)).await;
    assert_eq!(
        listed[0]["attempts"].as_array().unwrap().len(),
        1,
        "no retry after 410"
    );
    let (_, read) = call(
        &app,
        Method::GET,
        &format!("/v1/tenants/acme/webhooks/{endpoint}"),
        None,
    )
    .await;
    assert_eq!(read["disabled"], true);
    create_role(&app, "acme", "second").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "a disabled endpoint is sent nothing"
    );
    assert_eq!(
        deliveries(&app, "acme", &endpoint).await.len(),
        1,
        "nor queued anything"
    );
    let (_, audit) = call(&app, Method::GET, "/v1/tenants/acme/audit-events", None).await;
    assert!(audit.to_string().contains("webhook_disabled"), "audited");
}

/// Mid-rotation a message carries both signatures: a receiver holding only
/// the old secret and one holding only the new both verify it.
#[tokio::test]
async fn mid_rotation_the_old_and_the_new_secret_both_verify() {
    let app = spawn_app().await;
    let receiver = Receiver::start(200);
    app.create_tenant("acme").await;
    let (endpoint, old) = add_endpoint(&app, "acme", &receiver.url, &["role.created"]).await;
    let (status, rotated) = call(
        &app,
        Method::POST,
        &format!("/v1/tenants/acme/webhooks/{endpoint}/rotate-secret"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let new = rotated["secret"].as_str().unwrap().to_owned();
    create_role(&app, "acme", "auditor").await;
    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].signature.split(' ').count(),
        2,
        "two signatures"
    );
    assert!(verifies(&old, &received[0]) && verifies(&new, &received[0]));
    assert_ne!(
        officially_verified(&old, &received),
        Some(false),
        "old secret, official verifier"
    );
    assert_ne!(
        officially_verified(&new, &received),
        Some(false),
        "new secret, official verifier"
    );
    let (_, other) = super::add_endpoint(&app, "acme", "https://h.example.com/", &["*"]).await;
    assert!(
        !verifies(&other, &received[0]),
        "another secret does not verify"
    );
}

#[tokio::test]
async fn another_tenants_endpoint_never_sees_an_event() {
    let app = spawn_app().await;
    let (ours, theirs) = (Receiver::start(200), Receiver::start(200));
    app.create_tenant("acme").await;
    app.create_tenant("globex").await;
    add_endpoint(&app, "acme", &ours.url, &["*"]).await;
    add_endpoint(&app, "globex", &theirs.url, &["*"]).await;
    create_role(&app, "acme", "auditor").await;
    let received = ours.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(theirs.received().is_empty(), "globex heard nothing of acme");
}

/// The account's login limit hit: `login.locked`, once however many
/// attempts are refused.
#[tokio::test]
async fn an_accounts_login_limit_reports_login_locked_once() {
    let mut settings = test_settings();
    settings.limits.login_per_account_ip = 2;
    let app = spawn_app_with(settings).await;
    let receiver = Receiver::start(200);
    app.create_tenant("acme").await;
    let alice = app.create_user("acme", "alice", "member").await;
    add_endpoint(&app, "acme", &receiver.url, &["login.locked"]).await;
    for _ in 0..6 {
        app.login("acme", "alice", "wrong password").await;
    }
    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1, "once");
    let body = received[0].json();
    assert_eq!(body["type"], "login.locked");
    assert_eq!(body["data"]["user_id"], alice["id"]);
    for _ in 0..3 {
        app.login("acme", "nobody", "wrong password").await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "an unknown username reports nothing"
    );
}
