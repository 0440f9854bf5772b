//! Several instances on one database: every message delivered, none twice
//! to a receiver that answers at once; and whatever instance dies (the
//! writer as it answers, or the deliverer while the receiver holds its
//! request), the message still arrives, with the same `webhook-id`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

use super::receiver::Receiver;
use super::{add_endpoint, create_role, settle};
use crate::helpers::binary::Running;
use crate::helpers::{TestApp, service_key, spawn_app_with, test_settings};

#[tokio::test]
async fn two_instances_deliver_a_thousand_changes_each_exactly_once() {
    let settings = test_settings();
    let a = spawn_app_with(settings.clone()).await;
    let b = spawn_app_with(settings).await;
    let receiver = Receiver::start(200);
    a.create_tenant("acme").await;
    add_endpoint(&a, "acme", &receiver.url, &["role.updated"]).await;
    for role in 0..4 {
        create_role(&a, "acme", &format!("role-{role}")).await;
    }
    let patch = |app: &TestApp, i: usize| {
        let request = app
            .client
            .patch(app.url(&format!("/v1/tenants/acme/roles/role-{}", i % 4)))
            .bearer_auth(service_key())
            .json(&json!({ "description": format!("change {i}") }));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let statuses: Vec<u16> = futures_util::stream::iter(0..1000)
        .map(|i| patch(if i % 2 == 0 { &a } else { &b }, i))
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every change answered 200"
    );

    let received = receiver.wait_for(1000, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received = receiver.received().len().max(received.len());
    let ids: HashSet<String> = receiver.received().into_iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 1000, "every message delivered");
    assert_eq!(received, 1000, "none twice");
}

/// The writer (the real binary, which never polls in this test) killed the
/// moment it answers: another instance delivers what it committed.
#[tokio::test]
async fn the_writer_killed_as_it_answers_its_message_still_arrives() {
    let mut settings = test_settings();
    let b = spawn_app_with(settings.clone()).await;
    let receiver = Receiver::start(200);
    b.create_tenant("acme").await;
    add_endpoint(&b, "acme", &receiver.url, &["role.created"]).await;
    b.stop().await;

    settings.webhooks.poll_interval = Duration::from_secs(3600);
    let mut writer = Running::start(&settings);
    assert!(writer.readyz_answers(200).await, "the writer starts");
    let created = create_role_on(&writer).await;
    writer.child.start_kill().unwrap();
    assert_eq!(created.status(), 201);
    writer.child.wait().await.unwrap();
    assert!(receiver.received().is_empty(), "the writer sent nothing");

    settings.webhooks.poll_interval = Duration::from_millis(100);
    let other = spawn_app_with(settings).await;
    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1, "delivered by the other instance");
    assert_eq!(received[0].json()["type"], "role.created");
    other.stop().await;
}

/// The delivering instance (the real binary) killed while the receiver
/// holds its request: another instance takes the message over within 30 s
/// (when the lease runs out) and sends it with the same `webhook-id`.
#[tokio::test]
async fn the_deliverer_killed_mid_request_another_sends_the_same_message() {
    let settings = test_settings();
    let setup = spawn_app_with(settings.clone()).await;
    let receiver = Receiver::start(200);
    setup.create_tenant("acme").await;
    let (endpoint, _) = add_endpoint(&setup, "acme", &receiver.url, &["role.created"]).await;
    setup.stop().await;

    receiver.hold();
    let mut deliverer = Running::start(&settings);
    assert!(deliverer.readyz_answers(200).await, "the deliverer starts");
    let created = create_role_on(&deliverer).await;
    assert_eq!(created.status(), 201);
    let first = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(first.len(), 1, "the deliverer sent it");
    deliverer.child.start_kill().unwrap();
    deliverer.child.wait().await.unwrap();
    let killed = Instant::now();

    let other = spawn_app_with(settings).await;
    receiver.release();
    let received = receiver.wait_for(2, Duration::from_secs(35)).await;
    assert_eq!(received.len(), 2, "taken over");
    let taken_over = received[1].at - killed;
    assert!(taken_over < Duration::from_secs(30), "after {taken_over:?}");
    assert_eq!(received[1].id, received[0].id, "the same webhook-id");
    let listed = settle(
        &other,
        "acme",
        &endpoint,
        "delivered",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "delivered");
    other.stop().await;
}

/// `role.created` through the real binary.
async fn create_role_on(instance: &Running) -> reqwest::Response {
    instance
        .client
        .post(instance.url("/v1/tenants/acme/roles"))
        .bearer_auth(service_key())
        .json(&json!({ "name": "auditor", "permissions": ["reports:read"] }))
        .send()
        .await
        .unwrap()
}
