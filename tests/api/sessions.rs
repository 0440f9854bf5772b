//! Refresh tokens, logout, logout everywhere and revocation.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, service_key, spawn_app};

/// A fresh login: (access token, refresh token).
async fn login(app: &TestApp, tenant: &str, username: &str) -> (String, String) {
    let body: Value = app
        .login(tenant, username, PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn refresh(app: &TestApp, path: &str, refresh_token: &str) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(&json!({ "refresh_token": refresh_token }))
        .send()
        .await
        .unwrap()
}

async fn refreshed(app: &TestApp, refresh_token: &str) -> (String, String) {
    let response = refresh(app, "/v1/token/refresh", refresh_token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn post_bearer(app: &TestApp, path: &str, token: &str) -> u16 {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn sid(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token_within_the_session() {
    let app = spawn_app().await;
    app.tenant_with_user("acme", "alice").await;
    let (access, refresh_token) = login(&app, "acme", "alice").await;

    let response = refresh(&app, "/v1/token/refresh", &refresh_token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    let (new_access, new_refresh) = (
        body["access_token"].as_str().unwrap(),
        body["refresh_token"].as_str().unwrap(),
    );
    assert_ne!(new_refresh, refresh_token);
    assert_eq!(sid(new_access), sid(&access), "same session");
    assert_eq!(app.me(new_access).await.status(), 200);
    assert_eq!(
        app.me(&access).await.status(),
        200,
        "refreshing does not end the older access token"
    );

    // The new refresh token works in turn.
    let (third_access, _) = refreshed(&app, new_refresh).await;
    assert_eq!(app.me(&third_access).await.status(), 200);
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_kills_every_session_of_that_user() {
    let app = spawn_app().await;
    app.tenant_with_user("acme", "alice").await;
    app.create_user("acme", "bob", "member").await;
    let (bob_access, _) = login(&app, "acme", "bob").await;
    let (phone_access, phone_refresh) = login(&app, "acme", "alice").await;
    let (laptop_access, laptop_refresh) = login(&app, "acme", "alice").await;
    let (rotated_access, rotated_refresh) = refreshed(&app, &phone_refresh).await;

    // The spent token comes back: a theft signal.
    let reuse = refresh(&app, "/v1/token/refresh", &phone_refresh).await;
    assert_eq!(reuse.status(), 401);
    assert_eq!(
        reuse.json::<Value>().await.unwrap()["code"],
        "invalid_grant"
    );

    for token in [&phone_access, &laptop_access, &rotated_access] {
        assert_eq!(
            app.me(token).await.status(),
            401,
            "every access token of alice dies"
        );
    }
    for token in [&laptop_refresh, &rotated_refresh] {
        assert_eq!(
            refresh(&app, "/v1/token/refresh", token).await.status(),
            401,
            "and every refresh token"
        );
    }
    assert_eq!(
        app.me(&bob_access).await.status(),
        200,
        "bob notices nothing"
    );

    let events = app.service_get("/v1/tenants/acme/audit-events").await;
    let reuse_event = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "refresh_token_reused")
        .expect("an audit event for the reuse");
    assert_eq!(reuse_event["actor"]["kind"], "system");

    // Alice can still sign in again.
    let (fresh, _) = login(&app, "acme", "alice").await;
    assert_eq!(app.me(&fresh).await.status(), 200);
}

#[tokio::test]
async fn of_two_concurrent_refreshes_with_one_token_at_most_one_succeeds() {
    let app = spawn_app().await;
    app.tenant_with_user("acme", "alice").await;
    for _ in 0..5 {
        let (_, refresh_token) = login(&app, "acme", "alice").await;
        let (a, b) = tokio::join!(
            refresh(&app, "/v1/token/refresh", &refresh_token),
            refresh(&app, "/v1/token/refresh", &refresh_token)
        );
        let successes = [a.status(), b.status()]
            .iter()
            .filter(|s| s.is_success())
            .count();
        assert!(successes <= 1, "both refreshes succeeded");
        for status in [a.status(), b.status()] {
            assert!(status == 200 || status == 401, "{status}");
        }
    }
}

#[tokio::test]
async fn logout_ends_one_session_and_survives_a_cache_flush() {
    let app = spawn_app().await;
    app.tenant_with_user("acme", "alice").await;
    let (phone, phone_refresh) = login(&app, "acme", "alice").await;
    let (laptop, laptop_refresh) = login(&app, "acme", "alice").await;

    assert_eq!(post_bearer(&app, "/v1/logout", &phone).await, 204);
    assert_eq!(
        app.me(&phone).await.status(),
        401,
        "the logged-out token stops at once"
    );
    assert_eq!(
        refresh(&app, "/v1/token/refresh", &phone_refresh)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.me(&laptop).await.status(),
        200,
        "the other session keeps working"
    );

    // Postgres holds the truth: a flushed cache does not revive the token.
    app.flush_redis().await;
    assert_eq!(app.me(&phone).await.status(), 401);
    assert_eq!(app.me(&laptop).await.status(), 200);
    let (laptop_again, _) = refreshed(&app, &laptop_refresh).await;
    assert_eq!(app.me(&laptop_again).await.status(), 200);
    assert_eq!(
        post_bearer(&app, "/v1/logout", &phone).await,
        401,
        "logging out twice needs a live token"
    );
}

#[tokio::test]
async fn logout_all_ends_every_session() {
    let app = spawn_app().await;
    app.tenant_with_user("acme", "alice").await;
    let (phone, phone_refresh) = login(&app, "acme", "alice").await;
    let (laptop, laptop_refresh) = login(&app, "acme", "alice").await;
    assert_eq!(post_bearer(&app, "/v1/logout-all", &laptop).await, 204);
    for token in [&phone, &laptop] {
        assert_eq!(app.me(token).await.status(), 401);
    }
    for token in [&phone_refresh, &laptop_refresh] {
        assert_eq!(
            refresh(&app, "/v1/token/refresh", token).await.status(),
            401
        );
    }
    app.flush_redis().await;
    assert_eq!(app.me(&phone).await.status(), 401, "after a flush too");
}

async fn revoke(app: &TestApp, form: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .post(app.url("/v1/revoke"))
        .bearer_auth(service_key())
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn rfc7009_revocation() {
    let app = spawn_app().await;
    app.tenant_with_user("acme", "alice").await;

    // Unknown or invalid tokens: 200 all the same.
    for token in [
        "nonsense",
        "tjr_unknownunknownunknownunknownunknownunknow",
        "a.b.c",
    ] {
        assert_eq!(
            revoke(&app, &[("token", token)]).await.status(),
            200,
            "{token}"
        );
    }

    // An access token: its session ends.
    let (access, refresh_token) = login(&app, "acme", "alice").await;
    let (other, _) = login(&app, "acme", "alice").await;
    assert_eq!(
        revoke(
            &app,
            &[("token", &access), ("token_type_hint", "access_token")]
        )
        .await
        .status(),
        200
    );
    assert_eq!(app.me(&access).await.status(), 401);
    assert_eq!(
        refresh(&app, "/v1/token/refresh", &refresh_token)
            .await
            .status(),
        401
    );
    assert_eq!(app.me(&other).await.status(), 200);

    // A refresh token: its session ends, access tokens included.
    let (access, refresh_token) = login(&app, "acme", "alice").await;
    assert_eq!(
        revoke(
            &app,
            &[
                ("token", &refresh_token),
                ("token_type_hint", "refresh_token")
            ]
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        refresh(&app, "/v1/token/refresh", &refresh_token)
            .await
            .status(),
        401
    );
    assert_eq!(app.me(&access).await.status(), 401);

    // Only services may revoke.
    let anonymous = app
        .client
        .post(app.url("/v1/revoke"))
        .form(&[("token", other.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(app.me(&other).await.status(), 200);
}

#[tokio::test]
async fn refresh_fails_for_disabled_deleted_and_foreign_users() {
    let app = spawn_app().await;
    let alice = app.tenant_with_user("acme", "alice").await;
    app.create_user("acme", "root", "admin").await;
    let bob = app.create_user("acme", "bob", "member").await;
    app.tenant_with_user("globex", "gina").await;

    // Another tenant's route.
    let (_, alice_refresh) = login(&app, "acme", "alice").await;
    assert_eq!(
        refresh(&app, "/v1/tenants/globex/token/refresh", &alice_refresh)
            .await
            .status(),
        401
    );
    let ok = refresh(&app, "/v1/tenants/acme/token/refresh", &alice_refresh).await;
    assert_eq!(
        ok.status(),
        200,
        "the refusal did not spend the token; its own tenant's route works"
    );

    // Disabled, then enabled again: the old refresh token stays dead.
    let (_, alice_refresh) = login(&app, "acme", "alice").await;
    let user_path = format!("/v1/tenants/acme/users/{}", alice.id);
    let patch = |body: Value| {
        app.client
            .patch(app.url(&user_path))
            .bearer_auth(service_key())
            .json(&body)
            .send()
    };
    assert_eq!(
        patch(json!({ "disabled": true })).await.unwrap().status(),
        200
    );
    assert_eq!(
        refresh(&app, "/v1/token/refresh", &alice_refresh)
            .await
            .status(),
        401
    );
    assert_eq!(
        patch(json!({ "disabled": false })).await.unwrap().status(),
        200
    );
    assert_eq!(
        refresh(&app, "/v1/token/refresh", &alice_refresh)
            .await
            .status(),
        401
    );

    // Deleted.
    let (_, bob_refresh) = login(&app, "acme", "bob").await;
    let bob_path = format!("/v1/tenants/acme/users/{}", bob["id"].as_str().unwrap());
    let deleted = app
        .client
        .delete(app.url(&bob_path))
        .bearer_auth(service_key())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        refresh(&app, "/v1/token/refresh", &bob_refresh)
            .await
            .status(),
        401
    );

    // Malformed requests are problems, not 500s.
    let bad = app
        .client
        .post(app.url("/v1/token/refresh"))
        .json(&json!({ "token": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn expired_refresh_tokens_and_dead_sessions_are_pruned() {
    use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let app = spawn_app().await;
    app.tenant_with_user("acme", "alice").await;
    let (_, live_refresh) = login(&app, "acme", "alice").await;
    let (expired_access, expired_refresh) = login(&app, "acme", "alice").await;
    let mut conn = app.db().await;
    // Age the second session: its refresh token and access tokens are past expiry.
    conn.batch_execute(&format!(
        "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE session_id = '{sid}'; \
         UPDATE sessions SET access_valid_until = now() - interval '1 second' WHERE id = '{sid}';",
        sid = sid(&expired_access)
    ))
    .await
    .unwrap();
    assert_eq!(
        refresh(&app, "/v1/token/refresh", &expired_refresh)
            .await
            .status(),
        401,
        "expired"
    );

    let sessions = "SELECT count(*) AS n FROM sessions";
    assert_eq!(
        diesel::sql_query(sessions)
            .get_result::<Count>(&mut conn)
            .await
            .unwrap()
            .n,
        3
    );
    let pruned = tenant_jwt::db::sessions::prune(&mut conn).await.unwrap();
    assert_eq!(pruned, (1, 1), "one refresh token and one session");
    assert_eq!(
        diesel::sql_query(sessions)
            .get_result::<Count>(&mut conn)
            .await
            .unwrap()
            .n,
        2
    );
    assert_eq!(
        refresh(&app, "/v1/token/refresh", &live_refresh)
            .await
            .status(),
        200,
        "live ones stay"
    );
}
