//! Locations that require permissions, through a real gateway: decided from
//! the user's roles now (not the token's), read-your-writes with the version
//! a write returned, the roles passed upstream.

use reqwest::Method;
use serde_json::{Value, json};

use super::Gateway;
use crate::helpers::{Member, TestApp, service_key};

/// A roles write as the root key; the tenant's new `authz_version`.
async fn write(app: &TestApp, method: Method, path: &str, body: Value) -> i64 {
    let response = app
        .client
        .request(method, app.url(path))
        .bearer_auth(service_key())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.headers()["authz-version"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// `/reports/` requires `reports:read` (in the auth URL's query),
/// `/invoices/` one of `invoices:read`, `invoices:approve` (in a header).
pub(super) async fn permission_cases(app: &TestApp, gateway: &Gateway, member: &Member) {
    let client = reqwest::Client::new();
    let status_at = async |path: &str, version: i64| -> (u16, Option<Value>) {
        let response = client
            .get(gateway.url(path))
            .bearer_auth(&member.token)
            .header("X-Auth-Roles", "owner")
            .header("X-Auth-Min-Version", version.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.ok())
    };
    let (reports, invoices) = ("/reports/q1", "/invoices/7");
    assert_eq!(status_at(reports, 0).await.0, 403, "{}", gateway.log());
    assert_eq!(status_at(invoices, 0).await.0, 403);

    let version = write(
        app,
        Method::POST,
        "/v1/tenants/acme/roles",
        json!({"name": "clerk", "permissions": ["reports:read"]}),
    )
    .await;
    let user_roles = format!("/v1/tenants/acme/users/{}/roles", member.id);
    let assigned = write(app, Method::PUT, &user_roles, json!({"roles": ["clerk"]})).await;
    assert!(assigned > version);
    let (status, echoed) = status_at(reports, assigned).await;
    assert_eq!(status, 200, "granted, from the first request");
    let headers = &echoed.unwrap()["headers"];
    assert_eq!(headers["x-auth-roles"], "clerk", "the client's is replaced");
    assert_eq!(status_at(invoices, assigned).await.0, 403);

    let clerk = "/v1/tenants/acme/roles/clerk";
    let both = json!({"permissions": ["reports:read", "invoices:approve"]});
    let granted = write(app, Method::PATCH, clerk, both).await;
    assert_eq!(status_at(invoices, granted).await.0, 200);
    let approve_only = json!({"permissions": ["invoices:approve"]});
    let removed = write(app, Method::PATCH, clerk, approve_only).await;
    assert_eq!(status_at(reports, removed).await.0, 403, "removed: refused");
    assert_eq!(status_at(invoices, removed).await.0, 200);

    let none = write(app, Method::PUT, &user_roles, json!({"roles": []})).await;
    assert_eq!(status_at(invoices, none).await.0, 403);
    let (status, echoed) = status_at("/orders", none).await;
    assert_eq!(status, 200, "no permission required");
    let roles = &echoed.unwrap()["headers"]["x-auth-roles"];
    assert!(
        roles.is_null() || roles == "",
        "no roles, and the client's claim is gone: {roles}"
    );
}
