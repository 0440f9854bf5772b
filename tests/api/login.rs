//! Password login.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn login_then_me() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let user = app.create_user("acme", "alice", "admin").await;

    let response = app.login("acme", "alice", PASSWORD).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["refresh_expires_in"], 30 * 86_400);
    assert!(
        body["refresh_token"].as_str().unwrap().len() >= 43,
        "at least 256 bits"
    );
    assert_eq!(body.as_object().unwrap().len(), 5, "{body}");

    let me: Value = app
        .me(body["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user_id"], user["id"]);
    assert_eq!(me["role"], "admin");
}

#[tokio::test]
async fn usernames_match_without_regard_to_case() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    app.create_user("acme", "Alice.Smith@example.com", "member")
        .await;
    assert_eq!(
        app.login("acme", "alice.smith@EXAMPLE.com", PASSWORD)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn tokens_carry_the_generation_and_the_agreed_claims() {
    let app = spawn_app().await;
    let m = app.tenant_with_user("acme", "alice").await;
    let [header, payload, _]: [&str; 3] =
        m.token.split('.').collect::<Vec<_>>().try_into().unwrap();
    let decode = |s: &str| -> Value {
        serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        decode(header),
        json!({ "typ": "JWT", "alg": "HS256", "kid": "1" })
    );
    let claims = decode(payload);
    let mut names: Vec<_> = claims.as_object().unwrap().keys().cloned().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "aud", "exp", "iat", "iss", "jti", "nbf", "role", "sid", "sub", "tid"
        ]
    );
    assert_eq!(claims["sub"], m.id.to_string());
    assert_eq!(claims["tid"], m.tenant_id);
    assert_eq!(claims["iss"], crate::helpers::ISSUER);
    assert_eq!(claims["aud"], crate::helpers::AUDIENCE);
}

/// Status, the headers a client can see (all but Date and X-Request-Id) and the body bytes.
async fn observable(response: reqwest::Response) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let status = response.status().as_u16();
    let mut headers: Vec<_> = response
        .headers()
        .iter()
        // Each response has its own date and request id; all else must match.
        .filter(|(name, _)| *name != "date" && *name != "x-request-id")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn every_login_failure_is_the_same_401() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    app.create_user("acme", "alice", "member").await;
    app.create_user("acme", "dora", "member").await;
    {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use tenant_jwt::db::schema::users;
        diesel::update(users::table.filter(users::username.eq("dora")))
            .set(users::disabled_at.eq(diesel::dsl::now))
            .execute(&mut app.db().await)
            .await
            .unwrap();
    }

    let wrong_password = observable(app.login("acme", "alice", "not the password").await).await;
    assert_eq!(wrong_password.0, 401);
    assert!(
        String::from_utf8_lossy(&wrong_password.2).contains("\"code\":\"invalid_credentials\"")
    );
    for (tenant, username, password, what) in [
        ("acme", "nobody", PASSWORD, "unknown user"),
        ("acme", "dora", PASSWORD, "disabled user, right password"),
        ("no-such-tenant", "alice", PASSWORD, "unknown tenant"),
        ("Not A Slug", "alice", PASSWORD, "malformed tenant"),
        ("acme", "alice bob", PASSWORD, "malformed username"),
        (
            "acme",
            "alice",
            &"x".repeat(1025),
            "password over the limit",
        ),
        (
            "acme",
            &"a".repeat(129),
            PASSWORD,
            "username over the limit",
        ),
    ] {
        let failure = observable(app.login(tenant, username, password).await).await;
        assert_eq!(
            failure, wrong_password,
            "{what} must look exactly like a wrong password"
        );
    }
}

#[tokio::test]
async fn login_bodies_are_checked() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let url = app.url("/v1/tenants/acme/login");
    let send = |body: &'static str, content_type: &'static str| {
        app.client
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases = [
        (
            send("{", "application/json").await.unwrap(),
            400,
            "bad_request",
        ),
        (
            send(r#"{"username":"a"}"#, "application/json")
                .await
                .unwrap(),
            400,
            "bad_request",
        ),
        (
            send(
                r#"{"username":"a","password":"b","admin":true}"#,
                "application/json",
            )
            .await
            .unwrap(),
            400,
            "bad_request",
        ),
        (
            send("username=a&password=b", "application/x-www-form-urlencoded")
                .await
                .unwrap(),
            415,
            "unsupported_media_type",
        ),
    ];
    for (response, status, code) in cases {
        assert_eq!(response.status(), status);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], code);
    }
    let huge = json!({ "username": "a", "password": "x".repeat(20_000) });
    let response = app.client.post(&url).json(&huge).send().await.unwrap();
    assert_eq!(response.status(), 413);
}
