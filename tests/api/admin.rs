//! Creating tenants and users with a service key.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, service_key, spawn_app};

#[tokio::test]
async fn create_tenant_returns_it_and_refuses_duplicates() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/v1/tenants"))
        .bearer_auth(service_key())
        .json(&json!({ "slug": "acme", "name": "Acme Inc" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["location"], "/v1/tenants/acme");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["slug"], "acme");
    assert_eq!(body["name"], "Acme Inc");
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    assert!(body["created_at"].as_str().is_some());

    let again = app
        .client
        .post(app.url("/v1/tenants"))
        .bearer_auth(service_key())
        .json(&json!({ "slug": "acme", "name": "Other" }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let problem: Value = again.json().await.unwrap();
    assert_eq!(problem["code"], "tenant_exists");
}

#[tokio::test]
async fn tenant_input_is_validated() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({ "slug": "Acme", "name": "A" }), "slug"),
        (json!({ "slug": "", "name": "A" }), "slug"),
        (json!({ "slug": "a".repeat(64), "name": "A" }), "slug"),
        (json!({ "slug": "acme", "name": "  " }), "name"),
    ] {
        let response = app
            .client
            .post(app.url("/v1/tenants"))
            .bearer_auth(service_key())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "validation_failed");
        assert_eq!(problem["field"], field);
    }
}

#[tokio::test]
async fn create_user_validates_and_refuses_duplicates_ignoring_case() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let user = app.create_user("acme", "Alice", "admin").await;
    assert_eq!(user["username"], "Alice");
    assert_eq!(user["role"], "admin");
    assert_eq!(user["disabled"], false);
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());

    let post = |tenant: &str, body: Value| {
        app.client
            .post(app.url(&format!("/v1/tenants/{tenant}/users")))
            .bearer_auth(service_key())
            .json(&body)
            .send()
    };
    let duplicate = post("acme", json!({ "username": "ALICE", "password": PASSWORD }))
        .await
        .unwrap();
    assert_eq!(duplicate.status(), 409);
    assert_eq!(
        duplicate.json::<Value>().await.unwrap()["code"],
        "user_exists"
    );

    for (body, field) in [
        (
            json!({ "username": "bob", "password": "short" }),
            "password",
        ),
        (
            json!({ "username": "bob", "password": "x".repeat(1025) }),
            "password",
        ),
        (
            json!({ "username": "bob smith", "password": PASSWORD }),
            "username",
        ),
        (
            json!({ "username": "bob", "password": PASSWORD, "role": "owner" }),
            "role",
        ),
    ] {
        let response = post("acme", body.clone()).await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(response.json::<Value>().await.unwrap()["field"], field);
    }

    let missing = post(
        "nowhere",
        json!({ "username": "bob", "password": PASSWORD }),
    )
    .await
    .unwrap();
    assert_eq!(missing.status(), 404);

    // The same username may exist in another tenant.
    app.create_tenant("globex").await;
    let member = app.create_user("globex", "alice", "member").await;
    assert_eq!(member["role"], "member");
}

#[tokio::test]
async fn admin_routes_need_a_valid_service_key() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    app.create_user("acme", "alice", "admin").await;
    let admin_token = app.token("acme", "alice").await;

    for (auth, challenge) in [
        (None, r#"Bearer realm="tenant-jwt""#),
        (
            Some("wrong-service-key-0123456789abcdefghijkl"),
            r#"Bearer realm="tenant-jwt", error="invalid_token""#,
        ),
    ] {
        for (path, body) in [
            ("/v1/tenants", json!({ "slug": "globex", "name": "Globex" })),
            (
                "/v1/tenants/acme/users",
                json!({ "username": "eve", "password": PASSWORD }),
            ),
        ] {
            let mut request = app.client.post(app.url(path)).json(&body);
            if let Some(auth) = auth {
                request = request.bearer_auth(auth);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{path}");
            assert_eq!(response.headers()["www-authenticate"], challenge);
        }
    }
    assert_eq!(
        app.login("acme", "eve", PASSWORD).await.status(),
        401,
        "eve was never created"
    );

    // Creating tenants is for services only, even for a tenant's admin.
    let as_admin = app
        .client
        .post(app.url("/v1/tenants"))
        .bearer_auth(&admin_token)
        .json(&json!({ "slug": "globex", "name": "Globex" }))
        .send()
        .await
        .unwrap();
    assert_eq!(as_admin.status(), 401);
}
