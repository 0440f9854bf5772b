//! `POST /v1/authz/check`: answered from the current roles on every
//! instance; a removal refused elsewhere within a fraction of a second; a
//! `min_version` answered exactly, whichever instance is asked.

use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::Method;
use serde_json::{Value, json};

use super::{assign, call, create_role};
use crate::helpers::{TestApp, service_key, spawn_app, spawn_app_with, test_settings};

async fn check(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/v1/authz/check"))
        .bearer_auth(service_key())
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn allowed(app: &TestApp, token: &str, permission: &str, min_version: Option<i64>) -> bool {
    let mut body = json!({"token": token, "permissions": [permission]});
    if let Some(version) = min_version {
        body["min_version"] = json!(version);
    }
    let (status, answer) = check(app, body).await;
    assert_eq!(status, 200, "{answer}");
    answer["allowed"].as_bool().unwrap()
}

#[tokio::test]
async fn a_check_answers_all_any_and_what_is_missing() {
    let app = spawn_app().await;
    let alice = app.tenant_with_user("acme", "alice").await;
    create_role(&app, "approver", &["invoices:approve", "reports:*"]).await;
    assign(&app, alice.id, &["approver"]).await;

    let asked = json!(["invoices:approve", "invoices:void", "reports:q1:read"]);
    let (status, all) = check(&app, json!({"token": alice.token, "permissions": asked})).await;
    assert_eq!(status, 200);
    assert_eq!(all["active"], true);
    assert_eq!(all["allowed"], false);
    assert_eq!(all["missing"], json!(["invoices:void"]));
    assert!(all["authz_version"].as_i64().unwrap() > 0);
    let (_, any) = check(
        &app,
        json!({"token": alice.token, "permissions": asked, "require": "any"}),
    )
    .await;
    assert_eq!(any["allowed"], true);

    // Not a token: inactive, allowed nothing.
    let (status, inactive) = check(&app, json!({"token": "nope", "permissions": ["a"]})).await;
    assert_eq!(status, 200);
    assert_eq!(inactive, json!({"active": false, "allowed": false}));
    // Asking about a pattern, or nothing: 400 naming the field.
    for permissions in [json!(["invoices:*"]), json!([]), json!(["Invoices"])] {
        let (status, problem) = check(
            &app,
            json!({"token": alice.token, "permissions": permissions}),
        )
        .await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (400, Some("permissions")),
            "{permissions}"
        );
    }
    // Another tenant's credential: inactive, as for introspection.
    app.tenant_with_user("globex", "bob").await;
    let (_, _, created) = call(
        &app,
        Method::POST,
        "/v1/tenants/globex/service-credentials",
        Some(json!({"name": "globex checks", "scopes": ["introspect"]})),
        None,
    )
    .await;
    let response = app
        .client
        .post(app.url("/v1/authz/check"))
        .bearer_auth(created["key"].as_str().unwrap())
        .json(&json!({"token": alice.token, "permissions": ["invoices:approve"]}))
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer, json!({"active": false, "allowed": false}));
}

#[tokio::test]
async fn a_removed_permission_is_refused_on_another_instance_within_250_ms() {
    let settings = test_settings();
    let a = spawn_app_with(settings.clone()).await;
    let b = spawn_app_with(settings).await;
    let alice = a.tenant_with_user("acme", "alice").await;
    create_role(&a, "approver", &["invoices:approve"]).await;
    assign(&a, alice.id, &["approver"]).await;
    let mut worst = Duration::ZERO;
    for round in 0..5 {
        // B holds the tenant's view, granting.
        while !allowed(&b, &alice.token, "invoices:approve", None).await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let patch = json!({"permissions": ["invoices:read"]});
        let (status, _, _) = call(
            &a,
            Method::PATCH,
            "/v1/tenants/acme/roles/approver",
            Some(patch),
            None,
        )
        .await;
        assert_eq!(status, 200);
        let answered = Instant::now();
        while allowed(&b, &alice.token, "invoices:approve", None).await {
            assert!(
                answered.elapsed() < Duration::from_secs(1),
                "round {round}: still granted after 1 s"
            );
        }
        worst = worst.max(answered.elapsed());
        let patch = json!({"permissions": ["invoices:approve"]});
        call(
            &a,
            Method::PATCH,
            "/v1/tenants/acme/roles/approver",
            Some(patch),
            None,
        )
        .await;
    }
    assert!(
        worst < Duration::from_millis(250),
        "refused on B after {worst:?}"
    );
}

/// Edits on one instance and checks with the returned version on another,
/// at random: every answer is what a model of the state says.
#[tokio::test]
async fn checks_with_min_version_agree_with_the_last_write_on_any_instance() {
    let settings = test_settings();
    let a = spawn_app_with(settings.clone()).await;
    let b = spawn_app_with(settings).await;
    let alice = a.tenant_with_user("acme", "alice").await;
    let perms = ["p:a", "p:b", "p:c", "q:a"];
    create_role(&a, "r1", &[]).await;
    create_role(&a, "r2", &[]).await;
    let path = format!("/v1/tenants/acme/users/{}/roles", alice.id);
    // The model: each role's patterns, and whether alice holds it.
    let mut granted: [Vec<&str>; 2] = [vec![], vec![]];
    let mut holds = [false, false];
    let mut version = 0;
    let mut rng = rand::rng();
    let (mut edits, mut checks) = (0, 0);
    for _ in 0..240 {
        let (writer, reader) = if rng.random_bool(0.5) {
            (&a, &b)
        } else {
            (&b, &a)
        };
        if rng.random_bool(0.5) {
            let role = rng.random_range(0..2);
            let (status, headers, _) = if rng.random_bool(0.5) {
                let chosen: Vec<&str> = perms
                    .iter()
                    .chain(&["p:*"])
                    .copied()
                    .filter(|_| rng.random_bool(0.4))
                    .collect();
                granted[role] = chosen.clone();
                let name = format!("/v1/tenants/acme/roles/r{}", role + 1);
                call(
                    writer,
                    Method::PATCH,
                    &name,
                    Some(json!({"permissions": chosen})),
                    None,
                )
                .await
            } else {
                holds[role] = !holds[role];
                let names: Vec<String> = (0..2)
                    .filter(|r| holds[*r])
                    .map(|r| format!("r{}", r + 1))
                    .collect();
                call(
                    writer,
                    Method::PUT,
                    &path,
                    Some(json!({"roles": names})),
                    None,
                )
                .await
            };
            assert_eq!(status, 200);
            version = headers["authz-version"].to_str().unwrap().parse().unwrap();
            edits += 1;
        } else {
            let permission = perms[rng.random_range(0..perms.len())];
            let expected = (0..2).any(|r| {
                holds[r]
                    && granted[r]
                        .iter()
                        .any(|g| *g == permission || (*g == "p:*" && permission.starts_with("p:")))
            });
            let answer = allowed(reader, &alice.token, permission, Some(version)).await;
            assert_eq!(
                answer, expected,
                "{permission} at version {version}: holds {holds:?}, granted {granted:?}"
            );
            checks += 1;
        }
    }
    assert!(edits > 50 && checks > 50, "{edits} edits, {checks} checks");
}

/// The writing instance (the real binary) killed the moment it answers, and
/// Redis flushed: the removal it committed is refused on another instance
/// within 5 s, and stays refused.
#[tokio::test]
async fn a_removal_is_refused_elsewhere_though_its_writer_is_killed_as_it_answers() {
    use crate::helpers::binary::Running;

    let settings = test_settings();
    let b = spawn_app_with(settings.clone()).await;
    let alice = b.tenant_with_user("acme", "alice").await;
    create_role(&b, "approver", &["invoices:approve"]).await;
    assign(&b, alice.id, &["approver"]).await;
    assert!(allowed(&b, &alice.token, "invoices:approve", None).await);

    let mut writer = Running::start(&settings);
    assert!(writer.readyz_answers(200).await, "the writer starts");
    let removed = writer
        .client
        .patch(writer.url("/v1/tenants/acme/roles/approver"))
        .bearer_auth(service_key())
        .json(&json!({"permissions": []}))
        .send()
        .await
        .unwrap();
    writer.child.start_kill().unwrap();
    let answered = Instant::now();
    assert_eq!(removed.status(), 200);
    b.flush_redis().await;
    while allowed(&b, &alice.token, "invoices:approve", None).await {
        assert!(
            answered.elapsed() < Duration::from_secs(5),
            "still granted 5 s after the writer died"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..20 {
        assert!(!allowed(&b, &alice.token, "invoices:approve", None).await);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    writer.child.wait().await.unwrap();
}
