//! Tenant admins and tenant credentials manage their own tenant's
//! credentials only.

use serde_json::{Value, json};

use super::*;
use crate::helpers::{Member, TestApp, service_key, spawn_app};

#[tokio::test]
async fn tenant_admins_and_tenant_credentials_manage_their_own_tenant_only() {
    let app = spawn_app().await;
    app.tenant_with_user("beta", "bob").await;
    let admin = tenant_admin(&app, "acme", "root-admin").await;
    let path = "/v1/tenants/acme/service-credentials";

    // An admin's token: tenant scopes, own tenant only.
    let (status, manager) = post(
        &app,
        &admin.token,
        path,
        json!({ "name": "acme manager", "scopes": ["credentials:write", "introspect"] }),
    )
    .await;
    assert_eq!(status, 201, "{manager}");
    assert_eq!(manager["created_by"], format!("user:{}", admin.id));
    let (status, problem) = post(
        &app,
        &admin.token,
        "/v1/tenants/beta/service-credentials",
        json!({ "name": "x", "scopes": ["introspect"] }),
    )
    .await;
    assert_eq!((status, &problem["code"]), (404, &json!("not_found")));
    let (status, problem) = post(
        &app,
        &admin.token,
        path,
        json!({ "name": "x", "scopes": ["tenants:write"] }),
    )
    .await;
    assert_eq!(
        (status, &problem["code"]),
        (403, &json!("insufficient_scope"))
    );
    let (status, problem) = post(
        &app,
        &service_key(),
        "/v1/service-credentials",
        json!({ "name": "x", "tenant": "acme", "scopes": ["introspect", "tenants:write"] }),
    )
    .await;
    assert_eq!(
        (status, &problem["code"]),
        (403, &json!("insufficient_scope")),
        "tenants:write is the root level's, even from a root key"
    );
    let (status, _) = post(
        &app,
        &admin.token,
        "/v1/service-credentials",
        json!({ "name": "x", "tenant": null, "scopes": ["introspect"] }),
    )
    .await;
    assert_eq!(status, 403, "no root-level credential from a tenant admin");

    // A tenant credential with credentials:write grants only what it holds.
    let manager = key_in(&manager);
    let (status, problem) = post(
        &app,
        &manager,
        path,
        json!({ "name": "wider", "scopes": ["introspect", "users:write"] }),
    )
    .await;
    assert_eq!(
        (status, &problem["code"]),
        (403, &json!("insufficient_scope"))
    );
    let (status, narrow) = post(
        &app,
        &manager,
        "/v1/service-credentials",
        json!({ "name": "narrow", "tenant": "acme", "scopes": ["introspect"], "expires_in": 3600 }),
    )
    .await;
    assert_eq!(status, 201, "{narrow}");
    let (status, _) = post(
        &app,
        &manager,
        "/v1/service-credentials",
        json!({ "name": "elsewhere", "tenant": "beta", "scopes": ["introspect"] }),
    )
    .await;
    assert_eq!(status, 404);

    // A credential cannot outlive the credential that made it.
    let (_, short) = post(
        &app,
        &service_key(),
        "/v1/service-credentials",
        json!({ "name": "short", "tenant": "acme", "scopes": ["credentials:write", "introspect"], "expires_in": 600 }),
    )
    .await;
    let (status, child) = post(
        &app,
        &key_in(&short),
        path,
        json!({ "name": "child", "scopes": ["introspect"] }),
    )
    .await;
    assert_eq!(status, 201, "{child}");
    assert_eq!(
        child["expires_at"], short["expires_at"],
        "capped at its creator's expiry"
    );
    for created in [&short, &child] {
        assert_eq!(revoke(&app, &service_key(), &created["id"]).await, 204);
    }

    // A root-level credential elsewhere: listed at the root, not to acme.
    let root_level = credential(&app, None, &["introspect"]).await;
    let beta_level = credential(&app, Some("beta"), &["introspect"]).await;
    let names = |listed: &Value| -> Vec<String> {
        listed["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let listed = get(&app, &manager, "/v1/service-credentials").await;
    assert_eq!(names(&listed), ["acme manager", "narrow"], "{listed}");
    assert_eq!(names(&get(&app, &admin.token, path).await), names(&listed));
    assert!(
        !listed.to_string().contains("tjs_"),
        "never a key in a list"
    );
    let everything = app.service_get("/v1/service-credentials").await;
    assert_eq!(everything["credentials"].as_array().unwrap().len(), 4);

    // Revoking: another tenant's credential is not found.
    for (id, status) in [
        (&beta_level["id"], 404),
        (&root_level["id"], 404),
        (&narrow["id"], 204),
    ] {
        assert_eq!(revoke(&app, &manager, id).await, status, "{id}");
    }

    // Audit: acme's log has its events, the root-level log the rest.
    let events = app.service_get("/v1/tenants/acme/audit-events").await;
    let actions: Vec<(&str, &str)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("credential_"))
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actor"]["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("credential_created", "user"),
            ("credential_created", "credential"),
            ("credential_created", "service"),
            ("credential_created", "credential"),
            ("credential_revoked", "service"),
            ("credential_revoked", "service"),
            ("credential_revoked", "credential"),
        ]
    );
    let root_events = app.service_get("/v1/audit-events").await;
    let root_events = root_events["events"].as_array().unwrap();
    assert_eq!(root_events.len(), 1, "{root_events:?}");
    assert_eq!(root_events[0]["details"]["credential_id"], root_level["id"]);
    let response = app
        .client
        .get(app.url("/v1/audit-events"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        403,
        "the root-level log is not a tenant's"
    );
}

async fn tenant_admin(app: &TestApp, tenant: &str, username: &str) -> Member {
    let member = app.tenant_with_user(tenant, "someone").await;
    let user = app.create_user(tenant, username, "admin").await;
    Member {
        id: tenant_jwt::types::ids::UserId::parse(user["id"].as_str().unwrap()).unwrap(),
        token: app.token(tenant, username).await,
        ..member
    }
}
