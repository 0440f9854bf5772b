//! RFC 7662 token introspection.

use serde_json::{Value, json};

use crate::helpers::{AUDIENCE, ISSUER, service_key, spawn_app};

#[tokio::test]
async fn active_token_form_and_json() {
    let app = spawn_app().await;
    let m = app.tenant_with_user("acme", "alice").await;

    let response = app.introspect(&m.token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let form: Value = response.json().await.unwrap();
    assert_eq!(form["active"], true);
    assert_eq!(form["sub"], m.id.to_string());
    assert_eq!(form["tid"], m.tenant_id);
    assert_eq!(form["role"], "member");
    assert_eq!(form["username"], "alice");
    assert_eq!(form["iss"], ISSUER);
    assert_eq!(form["aud"], AUDIENCE);
    for field in ["exp", "iat"] {
        assert!(form[field].is_i64(), "{field}");
    }
    assert!(form["jti"].is_string());

    let json_body: Value = app
        .client
        .post(app.url("/v1/introspect"))
        .bearer_auth(service_key())
        .json(&json!({ "token": m.token }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json_body, form);
}

#[tokio::test]
async fn inactive_tokens_and_bad_requests() {
    let app = spawn_app().await;
    let inactive: Value = app.introspect("garbage").await.json().await.unwrap();
    assert_eq!(inactive, json!({ "active": false }));

    let no_token = app
        .client
        .post(app.url("/v1/introspect"))
        .bearer_auth(service_key())
        .form(&[("nothing", "here")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 400);

    let text = app
        .client
        .post(app.url("/v1/introspect"))
        .bearer_auth(service_key())
        .header("content-type", "text/plain")
        .body("token=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
}

#[tokio::test]
async fn introspection_needs_a_service_key() {
    let app = spawn_app().await;
    let m = app.tenant_with_user("acme", "alice").await;
    let anonymous = app
        .client
        .post(app.url("/v1/introspect"))
        .form(&[("token", m.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // A user cannot introspect with their own token as the credential.
    let as_user = app
        .client
        .post(app.url("/v1/introspect"))
        .bearer_auth(&m.token)
        .form(&[("token", m.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(as_user.status(), 401);
    assert_eq!(
        as_user.headers()["www-authenticate"],
        r#"Bearer realm="tenant-jwt", error="invalid_token""#
    );
}
