//! What signed-in users do for themselves: change their password, see where
//! they are signed in, end one session; and an admin's view of the same.

use reqwest::header::USER_AGENT;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, service_key, spawn_app, spawn_app_with, test_settings};

const NEW_PASSWORD: &str = "a much longer new passphrase";

/// A login from a client that says `agent`: (access token, refresh token).
async fn login_as(app: &TestApp, username: &str, agent: &str) -> (String, String) {
    let response = app
        .client
        .post(app.url("/v1/tenants/acme/login"))
        .header(USER_AGENT, agent)
        .json(&json!({ "username": username, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "login of {username}");
    let body: Value = response.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn change_password(
    app: &TestApp,
    token: &str,
    current: &str,
    new: &str,
) -> reqwest::Response {
    app.client
        .post(app.url("/v1/me/password"))
        .bearer_auth(token)
        .json(&json!({ "current_password": current, "new_password": new }))
        .send()
        .await
        .unwrap()
}

async fn refresh(app: &TestApp, refresh_token: &str) -> u16 {
    app.client
        .post(app.url("/v1/token/refresh"))
        .json(&json!({ "refresh_token": refresh_token }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn my_sessions(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app
        .client
        .get(app.url("/v1/me/sessions"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["sessions"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_changed_password_kills_every_other_session_and_token_on_every_instance() {
    let settings = test_settings();
    let a = spawn_app_with(settings.clone()).await;
    let b = spawn_app_with(settings).await;
    b.wait_for_local_cache().await;
    let alice = a.tenant_with_user("acme", "alice").await;
    let (laptop, laptop_refresh) = login_as(&a, "alice", "laptop").await;
    assert_eq!(
        b.me(&laptop).await.status(),
        200,
        "B holds alice's record in process"
    );

    let wrong = change_password(&a, &alice.token, "not my password", NEW_PASSWORD).await;
    assert_eq!(wrong.status(), 401, "a wrong current password");
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["code"], "invalid_credentials");
    let short = change_password(&a, &alice.token, PASSWORD, "short").await;
    assert_eq!(short.status(), 400);
    let body: Value = short.json().await.unwrap();
    assert_eq!(body["field"], "new_password", "the rule broken is named");
    assert_eq!(
        a.me(&laptop).await.status(),
        200,
        "failures changed nothing"
    );

    let changed = change_password(&a, &alice.token, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(changed.status(), 200);
    let pair: Value = changed.json().await.unwrap();
    let fresh = pair["access_token"].as_str().unwrap();
    assert!(
        pair["refresh_token"].as_str().is_some(),
        "the login response shape"
    );

    for (app, name) in [(&a, "A"), (&b, "B")] {
        assert_eq!(
            app.me(&alice.token).await.status(),
            401,
            "{name}: the asking token"
        );
        assert_eq!(
            app.me(&laptop).await.status(),
            401,
            "{name}: another session's token"
        );
        assert_eq!(app.me(fresh).await.status(), 200, "{name}: the new session");
    }
    assert_eq!(
        refresh(&a, &laptop_refresh).await,
        401,
        "other sessions' refresh tokens"
    );
    assert_eq!(a.login("acme", "alice", PASSWORD).await.status(), 401);
    assert_eq!(a.login("acme", "alice", NEW_PASSWORD).await.status(), 200);
    let events = a.service_get("/v1/tenants/acme/audit-events").await;
    let changed = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "password_changed")
        .expect("a password_changed event");
    assert_eq!(
        changed["actor"],
        json!({ "kind": "user", "id": alice.id.to_string() })
    );
    assert_eq!(changed["target_user_id"], alice.id.to_string());
}

#[tokio::test]
async fn wrong_current_passwords_count_against_the_login_limits() {
    let mut settings = test_settings();
    settings.limits.login_per_account_ip = 3;
    let app = spawn_app_with(settings).await;
    let alice = app.tenant_with_user("acme", "alice").await;
    // The login above took one attempt of the account's allowance.
    for _ in 0..2 {
        let wrong = change_password(&app, &alice.token, "guess", NEW_PASSWORD).await;
        assert_eq!(wrong.status(), 401);
    }
    let throttled = change_password(&app, &alice.token, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().contains_key("retry-after"));
    assert_eq!(
        app.login("acme", "alice", PASSWORD).await.status(),
        429,
        "one allowance"
    );
}

#[tokio::test]
async fn a_user_sees_their_sessions_and_ends_one_without_touching_the_others() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    app.create_user("acme", "alice", "member").await;
    app.create_user("acme", "bob", "member").await;
    let long_agent = "x".repeat(300);
    let (phone, phone_refresh) = login_as(&app, "alice", &long_agent).await;
    let (laptop, _) = login_as(&app, "alice", "laptop browser").await;
    let (bob, _) = login_as(&app, "bob", "bob's").await;

    let sessions = my_sessions(&app, &laptop).await;
    assert_eq!(sessions.len(), 2, "alice's two sessions, not bob's");
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["user_agent"], "laptop browser");
    assert_eq!(current[0]["ip"], "127.0.0.1");
    let other = sessions.iter().find(|s| s["current"] == false).unwrap();
    assert_eq!(
        other["user_agent"].as_str().unwrap().chars().count(),
        256,
        "truncated"
    );
    let phone_sid = other["id"].as_str().unwrap().to_owned();

    let bob_sid = my_sessions(&app, &bob).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let end = |token: String, sid: String| {
        app.client
            .delete(app.url(&format!("/v1/me/sessions/{sid}")))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        end(laptop.clone(), bob_sid).await.unwrap().status(),
        404,
        "not hers"
    );
    assert_eq!(
        end(laptop.clone(), "nonsense".into())
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(end(laptop.clone(), phone_sid).await.unwrap().status(), 204);

    assert_eq!(
        app.me(&phone).await.status(),
        401,
        "the ended session's token"
    );
    assert_eq!(
        refresh(&app, &phone_refresh).await,
        401,
        "and its refresh token"
    );
    assert_eq!(
        app.me(&laptop).await.status(),
        200,
        "the other session goes on"
    );
    assert_eq!(app.me(&bob).await.status(), 200);
    assert_eq!(my_sessions(&app, &laptop).await.len(), 1);
}

#[tokio::test]
async fn admins_see_and_end_their_users_sessions_and_no_one_elses() {
    let app = spawn_app().await;
    let alice = app.tenant_with_user("acme", "alice").await;
    app.create_user("acme", "root", "admin").await;
    let admin = app.token("acme", "root").await;
    app.tenant_with_user("globex", "mallory").await;
    app.create_user("globex", "boss", "admin").await;
    let other_admin = app.token("globex", "boss").await;
    let path = format!("/v1/tenants/acme/users/{}/sessions", alice.id);

    let listed = app
        .client
        .get(app.url(&path))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let body: Value = listed.json().await.unwrap();
    let sessions = body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    let sid = sessions[0]["id"].as_str().unwrap();
    assert_eq!(sessions[0]["current"], false);

    let foreign = app
        .client
        .get(app.url(&path))
        .bearer_auth(&other_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404, "another tenant's admin");
    let foreign = app
        .client
        .delete(app.url(&format!("{path}/{sid}")))
        .bearer_auth(&other_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404);
    assert_eq!(app.me(&alice.token).await.status(), 200);

    let ended = app
        .client
        .delete(app.url(&format!("{path}/{sid}")))
        .bearer_auth(service_key())
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
    assert_eq!(app.me(&alice.token).await.status(), 401);
    let events = app.service_get("/v1/tenants/acme/audit-events").await;
    let revoked = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "session_revoked")
        .expect("a session_revoked event");
    assert_eq!(revoked["details"]["session_id"], sid);
    assert_eq!(revoked["actor"]["kind"], "service");
}
