//! Tenant administration by services and by a tenant's own admins.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, service_key, spawn_app};

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    auth: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method.parse().unwrap(), app.url(path))
        .bearer_auth(auth)
        .header("x-request-id", "req-test-1");
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn status_and_body(response: reqwest::Response) -> (u16, String) {
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Every admin route of `tenant`, with `user` as the target.
fn admin_routes(tenant: &str, user: &str) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("GET", format!("/v1/tenants/{tenant}"), None),
        ("GET", format!("/v1/tenants/{tenant}/users"), None),
        ("GET", format!("/v1/tenants/{tenant}/users/{user}"), None),
        (
            "PATCH",
            format!("/v1/tenants/{tenant}/users/{user}"),
            Some(json!({ "role": "admin" })),
        ),
        (
            "POST",
            format!("/v1/tenants/{tenant}/users/{user}/rotate-secret"),
            None,
        ),
        ("DELETE", format!("/v1/tenants/{tenant}/users/{user}"), None),
        (
            "POST",
            format!("/v1/tenants/{tenant}/users"),
            Some(json!({ "username": "intruder", "password": PASSWORD })),
        ),
        ("POST", format!("/v1/tenants/{tenant}/rotate-secrets"), None),
        ("GET", format!("/v1/tenants/{tenant}/audit-events"), None),
    ]
}

#[tokio::test]
async fn an_admin_cannot_reach_another_tenant_and_cannot_tell_it_exists() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    app.create_user("acme", "root", "admin").await;
    let admin_a = app.token("acme", "root").await;
    let b = app.tenant_with_user("globex", "bob").await;
    let b_user = b.id.to_string();
    let made_up_user = uuid::Uuid::now_v7().to_string();

    for ((method, path, body), (_, made_up_path, _)) in admin_routes("globex", &b_user)
        .into_iter()
        .zip(admin_routes("no-such-tenant", &made_up_user))
    {
        let theirs = status_and_body(call(&app, method, &path, &admin_a, body.clone()).await).await;
        let nowhere =
            status_and_body(call(&app, method, &made_up_path, &admin_a, body).await).await;
        assert_eq!(theirs.0, 404, "{method} {path}");
        assert_eq!(
            theirs, nowhere,
            "{method} {path} must look like a tenant that does not exist"
        );
    }
    // Another tenant's user through one's own tenant: like a made-up id.
    let through_own = status_and_body(
        call(
            &app,
            "GET",
            &format!("/v1/tenants/acme/users/{b_user}"),
            &admin_a,
            None,
        )
        .await,
    )
    .await;
    let made_up = status_and_body(
        call(
            &app,
            "GET",
            &format!("/v1/tenants/acme/users/{made_up_user}"),
            &admin_a,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(through_own.0, 404);
    assert_eq!(through_own, made_up);

    assert_eq!(app.me(&b.token).await.status(), 200, "bob was not touched");
    assert_eq!(
        app.login("globex", "intruder", PASSWORD).await.status(),
        401
    );
}

#[tokio::test]
async fn members_get_403_and_admins_manage_their_own_tenant() {
    let app = spawn_app().await;
    let member = app.tenant_with_user("acme", "mia").await;
    for (method, path, body) in admin_routes("acme", &member.id.to_string()) {
        let response = call(&app, method, &path, &member.token, body).await;
        assert_eq!(response.status(), 403, "{method} {path}");
        assert_eq!(response.json::<Value>().await.unwrap()["code"], "forbidden");
    }

    app.create_user("acme", "root", "admin").await;
    let admin = app.token("acme", "root").await;
    let created = call(
        &app,
        "POST",
        "/v1/tenants/acme/users",
        &admin,
        Some(json!({ "username": "nina", "password": PASSWORD })),
    )
    .await;
    assert_eq!(created.status(), 201);
    let tenant: Value = call(&app, "GET", "/v1/tenants/acme", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tenant["slug"], "acme");
    let mia: Value = call(
        &app,
        "GET",
        &format!("/v1/tenants/acme/users/{}", member.id),
        &admin,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(mia["username"], "mia");
}

#[tokio::test]
async fn users_are_listed_in_stable_pages() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let mut ids = Vec::new();
    for name in ["u1", "u2", "u3", "u4", "u5"] {
        ids.push(
            app.create_user("acme", name, "member").await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = "/v1/tenants/acme/users?limit=2".to_owned();
        if let Some(after) = &after {
            path.push_str(&format!("&after={after}"));
        }
        let page: Value = call(&app, "GET", &path, &service_key(), None)
            .await
            .json()
            .await
            .unwrap();
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= 2);
        seen.extend(users.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every user once, in creation order");

    for bad in [
        "?limit=0",
        "?limit=abc",
        "?after=not-a-uuid",
        "?colour=blue",
    ] {
        let response = call(
            &app,
            "GET",
            &format!("/v1/tenants/acme/users{bad}"),
            &service_key(),
            None,
        )
        .await;
        assert_eq!(response.status(), 400, "{bad}");
    }
    let capped: Value = call(
        &app,
        "GET",
        "/v1/tenants/acme/users?limit=100000",
        &service_key(),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(capped["users"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn security_events_rotate_the_secret() {
    let app = spawn_app().await;
    let m = app.tenant_with_user("acme", "alice").await;
    let user_path = format!("/v1/tenants/acme/users/{}", m.id);
    let key = service_key();
    let patch = |body: Value| call(&app, "PATCH", &user_path, &key, Some(body));

    // Password change: old tokens die, the new password works, the old does not.
    let changed = patch(json!({ "password": "a brand new password" })).await;
    assert_eq!(changed.status(), 200);
    assert_eq!(app.me(&m.token).await.status(), 401);
    assert_eq!(app.login("acme", "alice", PASSWORD).await.status(), 401);
    assert_eq!(
        app.login("acme", "alice", "a brand new password")
            .await
            .status(),
        200
    );

    // Role change.
    let token = app
        .token_with("acme", "alice", "a brand new password")
        .await;
    let promoted: Value = patch(json!({ "role": "admin" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(promoted["role"], "admin");
    assert_eq!(app.me(&token).await.status(), 401);

    // Disable, then re-enable: old tokens stay dead.
    app.create_user("acme", "root", "admin").await;
    let token = app
        .token_with("acme", "alice", "a brand new password")
        .await;
    let disabled: Value = patch(json!({ "disabled": true }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(disabled["disabled"], true);
    assert_eq!(app.me(&token).await.status(), 401);
    assert_eq!(
        app.login("acme", "alice", "a brand new password")
            .await
            .status(),
        401
    );
    let enabled: Value = patch(json!({ "disabled": false }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(enabled["disabled"], false);
    assert_eq!(
        app.me(&token).await.status(),
        401,
        "re-enabling does not revive old tokens"
    );
    assert_eq!(
        app.login("acme", "alice", "a brand new password")
            .await
            .status(),
        200
    );

    for bad in [
        json!({}),
        json!({ "role": "owner" }),
        json!({ "password": "short" }),
        json!({ "name": "x" }),
    ] {
        assert_eq!(patch(bad.clone()).await.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn deleting_a_user_kills_their_tokens() {
    let app = spawn_app().await;
    let m = app.tenant_with_user("acme", "alice").await;
    assert_eq!(app.me(&m.token).await.status(), 200);
    let path = format!("/v1/tenants/acme/users/{}", m.id);
    assert_eq!(
        call(&app, "DELETE", &path, &service_key(), None)
            .await
            .status(),
        204
    );
    assert_eq!(app.me(&m.token).await.status(), 401);
    assert_eq!(
        call(&app, "GET", &path, &service_key(), None)
            .await
            .status(),
        404
    );
    assert_eq!(
        call(&app, "DELETE", &path, &service_key(), None)
            .await
            .status(),
        404
    );
    assert_eq!(app.login("acme", "alice", PASSWORD).await.status(), 401);
}

#[tokio::test]
async fn the_last_admin_cannot_be_removed() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let root = app.create_user("acme", "root", "admin").await;
    let path = format!("/v1/tenants/acme/users/{}", root["id"].as_str().unwrap());
    for (method, body) in [
        ("PATCH", Some(json!({ "role": "member" }))),
        ("PATCH", Some(json!({ "disabled": true }))),
        ("DELETE", None),
    ] {
        let response = call(&app, method, &path, &service_key(), body).await;
        assert_eq!(response.status(), 409, "{method}");
        assert_eq!(
            response.json::<Value>().await.unwrap()["code"],
            "last_admin"
        );
    }
    app.create_user("acme", "second", "admin").await;
    assert_eq!(
        call(
            &app,
            "PATCH",
            &path,
            &service_key(),
            Some(json!({ "role": "member" }))
        )
        .await
        .status(),
        200
    );
}

#[tokio::test]
async fn admin_actions_are_audited_without_secrets() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let root = app.create_user("acme", "root", "admin").await;
    let admin = app.token("acme", "root").await;
    let alice = call(
        &app,
        "POST",
        "/v1/tenants/acme/users",
        &admin,
        Some(json!({ "username": "alice", "password": PASSWORD })),
    )
    .await;
    let alice: Value = alice.json().await.unwrap();
    let alice_path = format!("/v1/tenants/acme/users/{}", alice["id"].as_str().unwrap());
    call(
        &app,
        "PATCH",
        &alice_path,
        &admin,
        Some(json!({ "password": "another password!" })),
    )
    .await;
    call(
        &app,
        "POST",
        &format!("{alice_path}/rotate-secret"),
        &service_key(),
        None,
    )
    .await;
    call(&app, "DELETE", &alice_path, &admin, None).await;
    call(
        &app,
        "POST",
        "/v1/tenants/acme/rotate-secrets",
        &service_key(),
        None,
    )
    .await;

    // The tenant-wide rotation killed the admin's token too: list as a service.
    assert_eq!(
        call(&app, "GET", "/v1/tenants/acme", &admin, None)
            .await
            .status(),
        401
    );
    let response = call(
        &app,
        "GET",
        "/v1/tenants/acme/audit-events",
        &service_key(),
        None,
    )
    .await;
    let text = response.text().await.unwrap();
    assert!(
        !text.contains(PASSWORD) && !text.contains("another password!"),
        "{text}"
    );
    let events: Value = serde_json::from_str(&text).unwrap();
    let events = events["events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "user_created",
            "user_created",
            "user_updated",
            "secret_rotated",
            "user_deleted",
            "tenant_secrets_rotated"
        ]
    );
    let by_admin = &events[1];
    assert_eq!(
        by_admin["actor"],
        json!({ "kind": "user", "id": root["id"] })
    );
    assert_eq!(by_admin["target_user_id"], alice["id"]);
    assert_eq!(by_admin["request_id"], "req-test-1");
    assert_eq!(events[0]["actor"]["kind"], "service");
    assert_eq!(events[2]["details"]["password_changed"], true);
    assert_eq!(events[2]["details"]["secret_rotated"], true);
}
