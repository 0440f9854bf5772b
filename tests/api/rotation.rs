//! Secret rotation: the product's reason to exist. After a rotation returns,
//! every token the user held is dead everywhere, and no other user notices.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tenant_jwt::types::ids::UserId;

use crate::helpers::{
    TestApp, claims_for, service_key, sign, spawn_app, spawn_app_with, test_settings,
};

async fn rotate(
    app: &TestApp,
    tenant: &str,
    user: UserId,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&format!("/v1/tenants/{tenant}/users/{user}/rotate-secret")))
        .bearer_auth(service_key());
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

fn kid(token: &str) -> i64 {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn rotation_kills_only_that_users_tokens() {
    let app = spawn_app().await;
    let alice = app.tenant_with_user("acme", "alice").await;
    let mut others = Vec::new();
    for name in ["bob", "carol", "dave"] {
        app.create_user("acme", name, "member").await;
        others.push(app.token("acme", name).await);
    }

    let response = rotate(&app, "acme", alice.id, None).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user_id"], alice.id.to_string());
    assert_eq!(body["generation"], 2);
    assert!(body["previous_generation_valid_until"].is_string());

    assert_eq!(
        app.me(&alice.token).await.status(),
        401,
        "alice's old token is dead"
    );
    for token in &others {
        assert_eq!(
            app.me(token).await.status(),
            200,
            "other users keep working"
        );
    }
    let fresh = app.token("acme", "alice").await;
    assert_eq!(kid(&fresh), 2);
    assert_eq!(app.me(&fresh).await.status(), 200, "alice logs in again");
}

#[tokio::test]
async fn grace_keeps_the_previous_generation_until_it_ends() {
    let app = spawn_app().await;
    let alice = app.tenant_with_user("acme", "alice").await;
    let response = rotate(&app, "acme", alice.id, Some(json!({ "grace_seconds": 2 }))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.me(&alice.token).await.status(),
        200,
        "inside the grace period"
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        app.me(&alice.token).await.status(),
        401,
        "after the grace period"
    );

    for bad in [
        json!({ "grace_seconds": 86_401 }),
        json!({ "grace_seconds": -1 }),
        json!({ "grace": 5 }),
    ] {
        let response = rotate(&app, "acme", alice.id, Some(bad.clone())).await;
        assert_eq!(response.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn a_rotation_through_one_instance_is_seen_by_another_at_once() {
    let settings = test_settings();
    let a = spawn_app_with(settings.clone()).await;
    let b = spawn_app_with(settings).await;
    b.wait_for_local_cache().await;
    let alice = a.tenant_with_user("acme", "alice").await;
    let local_hits = r#"tenant_jwt_key_record_cache_lookups_total{result="local_hit"}"#;
    for _ in 0..2 {
        assert_eq!(b.me(&alice.token).await.status(), 200);
    }
    assert!(
        b.metric(local_hits).await >= 1.0,
        "B has it in its in-process cache"
    );

    assert_eq!(rotate(&a, "acme", alice.id, None).await.status(), 200);
    // The in-process entry lives 30 s; the announcement must beat that by far.
    assert!(
        b.me_becomes(&alice.token, 401).await,
        "B rejects the old token as soon as the announcement arrives"
    );
}

/// One verification: when it started, the generation of the token, the outcome.
type Check = (Instant, i64, u16);

#[tokio::test]
async fn concurrent_rotations_and_verifications() {
    let app = Arc::new(spawn_app().await);
    let alice = app.tenant_with_user("acme", "alice").await;
    let rotations: Arc<Mutex<Vec<(Instant, i64)>>> = Arc::default();
    let checks: Arc<Mutex<Vec<Check>>> = Arc::default();
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));

    // Verifiers: log in (getting the generation current then), then keep
    // verifying that token and the very first one (generation 1), recording
    // when each check started.
    let mut verifiers = Vec::new();
    for _ in 0..4 {
        let (app, checks, running) = (app.clone(), checks.clone(), running.clone());
        let first = alice.token.clone();
        verifiers.push(tokio::spawn(async move {
            while running.load(std::sync::atomic::Ordering::SeqCst) {
                let token = app.token("acme", "alice").await;
                for _ in 0..10 {
                    for token in [&token, &first] {
                        let started = Instant::now();
                        let status = app.me(token).await.status().as_u16();
                        checks.lock().unwrap().push((started, kid(token), status));
                    }
                }
            }
        }));
    }

    let mut rotators = Vec::new();
    for _ in 0..50 {
        let (app, rotations) = (app.clone(), rotations.clone());
        let id = alice.id;
        rotators.push(tokio::spawn(async move {
            let response = rotate(&app, "acme", id, None).await;
            let returned = Instant::now();
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            rotations
                .lock()
                .unwrap()
                .push((returned, body["generation"].as_i64().unwrap()));
        }));
    }
    for task in rotators {
        task.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    for task in verifiers {
        task.await.unwrap();
    }

    let rotations = rotations.lock().unwrap().clone();
    let mut generations: Vec<i64> = rotations.iter().map(|(_, g)| *g).collect();
    generations.sort();
    assert_eq!(
        generations,
        (2..=51).collect::<Vec<_>>(),
        "unique, increasing generations"
    );

    let checks = checks.lock().unwrap().clone();
    assert!(
        checks.len() > 40,
        "verifiers ran alongside ({} checks)",
        checks.len()
    );
    let mut superseded_checks = 0;
    for (started, generation, status) in &checks {
        let superseded = rotations
            .iter()
            .any(|(returned, g)| returned < started && *g > *generation);
        if superseded {
            superseded_checks += 1;
            assert_eq!(
                *status, 401,
                "generation {generation} accepted after a later rotation returned"
            );
        }
    }
    assert!(
        superseded_checks > 0,
        "no check ran after a rotation superseded its token"
    );

    // The database agrees: exactly one current generation, the newest.
    let current: Vec<i64> = {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use tenant_jwt::db::schema::user_secrets;
        user_secrets::table
            .filter(user_secrets::user_id.eq(alice.id.as_uuid()))
            .filter(user_secrets::retired_at.is_null())
            .select(user_secrets::generation)
            .load(&mut app.db().await)
            .await
            .unwrap()
    };
    assert_eq!(current, [51]);
    // Tokens of each earlier generation, signed with that generation's real
    // secret, are all rejected now; the newest one verifies.
    for generation in [1, 25, 50] {
        let secret = app.secret_of(alice.id, generation).await;
        let token = sign(
            &claims_for(alice.id, &alice.tenant_id),
            secret.expose(),
            &generation.to_string(),
        );
        assert_eq!(
            app.me(&token).await.status(),
            401,
            "generation {generation}"
        );
    }
    let newest = app.secret_of(alice.id, 51).await;
    let token = sign(
        &claims_for(alice.id, &alice.tenant_id),
        newest.expose(),
        "51",
    );
    assert_eq!(app.me(&token).await.status(), 200);
}

#[tokio::test]
async fn tenant_wide_rotation_kills_every_token_of_the_tenant_only() {
    let app = spawn_app().await;
    let alice = app.tenant_with_user("acme", "alice").await;
    app.create_user("acme", "bob", "member").await;
    let bob = app.token("acme", "bob").await;
    let outsider = app.tenant_with_user("globex", "olga").await;

    let response = app
        .client
        .post(app.url("/v1/tenants/acme/rotate-secrets"))
        .bearer_auth(service_key())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "rotated": 2 })
    );
    assert_eq!(app.me(&alice.token).await.status(), 401);
    assert_eq!(app.me(&bob).await.status(), 401);
    assert_eq!(
        app.me(&outsider.token).await.status(),
        200,
        "another tenant is untouched"
    );
}

#[tokio::test]
async fn a_rotation_that_cannot_update_the_cache_does_not_report_success() {
    let proxy = crate::helpers::TcpProxy::to_redis().await;
    let direct = test_settings();
    let mut via_proxy = direct.clone();
    via_proxy.redis.url = proxy.redis_url();
    let a = spawn_app_with(via_proxy).await;
    let b = spawn_app_with(direct).await;
    let alice = a.tenant_with_user("acme", "alice").await;
    assert_eq!(
        b.me(&alice.token).await.status(),
        200,
        "cached in the shared Redis"
    );

    proxy.cut();
    let response = rotate(&a, "acme", alice.id, None).await;
    assert_eq!(
        response.status(),
        503,
        "A cannot update the cache, so it must not report success"
    );
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "unavailable"
    );

    // Once Redis is back, a retry succeeds and B rejects the old token at once.
    proxy.restore();
    let mut status = 0;
    for _ in 0..40 {
        status = rotate(&a, "acme", alice.id, None).await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the retry succeeds once Redis is back");
    assert!(b.me_becomes(&alice.token, 401).await);
}
