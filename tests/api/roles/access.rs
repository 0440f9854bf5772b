//! Roles are confined to the caller's tenant and scopes.

use reqwest::Method;
use serde_json::json;

use super::{call, call_as, create_role};
use crate::helpers::{Member, PASSWORD, spawn_app};

#[tokio::test]
async fn roles_are_confined_to_the_callers_tenant_and_scopes() {
    let app = spawn_app().await;
    let alice = app.tenant_with_user("acme", "alice").await;
    create_role(&app, "approver", &["invoices:approve"]).await;
    let bob: Member = app.tenant_with_user("globex", "bob").await;
    app.create_user("globex", "boss", "admin").await;
    let globex_admin = app.token("globex", "boss").await;
    app.create_user("acme", "chief", "admin").await;
    let acme_admin = app.token("acme", "chief").await;

    // Another tenant's admin: 404, exactly as a role that does not exist.
    for (method, path) in [
        (Method::GET, "/v1/tenants/acme/roles/approver".to_owned()),
        (Method::GET, "/v1/tenants/acme/roles".to_owned()),
        (Method::DELETE, "/v1/tenants/acme/roles/approver".to_owned()),
        (
            Method::GET,
            format!("/v1/tenants/acme/users/{}/roles", alice.id),
        ),
    ] {
        let (status, _, _) = call_as(&app, &globex_admin, method.clone(), &path, None, None).await;
        assert_eq!(status, 404, "{method} {path}");
    }
    // A user of another tenant through one's own tenant: not found.
    let (status, _, _) = call_as(
        &app,
        &acme_admin,
        Method::PUT,
        &format!("/v1/tenants/acme/users/{}/roles", bob.id),
        Some(json!({"roles": []})),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // The tenant's own admin: every roles scope.
    let (status, _, _) = call_as(
        &app,
        &acme_admin,
        Method::PUT,
        &format!("/v1/tenants/acme/users/{}/roles", alice.id),
        Some(json!({"roles": ["approver"]})),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // A member: 403.
    let (status, _, _) = call_as(
        &app,
        &alice.token,
        Method::GET,
        "/v1/tenants/acme/roles",
        None,
        None,
    )
    .await;
    assert_eq!(status, 403);
    // A credential with roles:read reads and cannot write.
    let (_, _, created) = call(
        &app,
        Method::POST,
        "/v1/tenants/acme/service-credentials",
        Some(json!({"name": "reader", "scopes": ["roles:read"]})),
        None,
    )
    .await;
    let key = created["key"].as_str().unwrap();
    let (status, _, _) = call_as(
        &app,
        key,
        Method::GET,
        "/v1/tenants/acme/roles/approver",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let body = Some(json!({"name": "x", "permissions": []}));
    let (status, _, problem) = call_as(
        &app,
        key,
        Method::POST,
        "/v1/tenants/acme/roles",
        body,
        None,
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
    assert_eq!(app.login("acme", "alice", PASSWORD).await.status(), 200);
}
