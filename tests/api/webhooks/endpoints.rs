//! Endpoints: managed by the tenant's admins, their secret shown on creation
//! and rotation only, checked by the SSRF guard, audited, confined to
//! their tenant.

use reqwest::Method;
use serde_json::json;

use super::{call, call_as};
use crate::helpers::{spawn_app, spawn_app_with, test_settings};

#[tokio::test]
async fn an_endpoint_is_managed_and_its_secret_shown_only_on_creation_and_rotation() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let base = "/v1/tenants/acme/webhooks";
    let (status, created) = call(
        &app,
        Method::POST,
        base,
        Some(json!({
            "url": "https://hooks.example.com/a",
            "events": ["user.created", "role.deleted", "user.created"],
            "description": "SIEM",
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 44,
        "{secret}"
    );
    assert_eq!(created["events"], json!(["user.created", "role.deleted"]));
    assert_eq!(created["disabled"], false);
    let id = created["id"].as_str().unwrap();
    let one = format!("{base}/{id}");

    let (status, read) = call(&app, Method::GET, &one, None).await;
    assert_eq!(status, 200);
    assert!(
        read.get("secret").is_none(),
        "a read never shows the secret: {read}"
    );
    assert_eq!(read["description"], "SIEM");
    let (_, listed) = call(&app, Method::GET, base, None).await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(secret), "nor does a listing");

    let (status, patched) = call(
        &app,
        Method::PATCH,
        &one,
        Some(json!({ "events": ["*"], "disabled": true })),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["events"], json!(["*"]));
    assert_eq!(patched["disabled"], true);

    let (status, rotated) = call(&app, Method::POST, &format!("{one}/rotate-secret"), None).await;
    assert_eq!(status, 200);
    let new_secret = rotated["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);

    for bad in [
        json!({ "url": "https://h.example.com/", "events": ["user.exploded"] }),
        json!({ "url": "https://h.example.com/", "events": ["*", "user.created"] }),
        json!({ "url": "https://h.example.com/", "events": [] }),
        json!({ "url": "not a url", "events": ["*"] }),
        json!({ "url": "https://u:p@h.example.com/", "events": ["*"] }),
    ] {
        let (status, body) = call(&app, Method::POST, base, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad} → {body}");
        assert_eq!(body["code"], "validation_failed", "{body}");
    }

    let (status, _) = call(&app, Method::DELETE, &one, None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&app, Method::GET, &one, None).await;
    assert_eq!(status, 404);

    let (_, audit) = call(&app, Method::GET, "/v1/tenants/acme/audit-events", None).await;
    let actions: Vec<_> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("webhook_"))
        .collect();
    assert_eq!(
        actions,
        [
            "webhook_created",
            "webhook_updated",
            "webhook_secret_rotated",
            "webhook_deleted"
        ]
    );
    assert!(
        !audit.to_string().contains(&secret[6..]),
        "no secret in the audit log"
    );
}

#[tokio::test]
async fn another_tenants_endpoints_answer_404_and_members_403() {
    let app = spawn_app().await;
    let member = app.tenant_with_user("acme", "alice").await;
    app.create_tenant("globex").await;
    let (id, _) = super::add_endpoint(&app, "globex", "https://h.example.com/", &["*"]).await;
    let admin = app.create_user("acme", "root", "admin").await;
    assert!(admin["id"].is_string());
    let admin_token = app.token("acme", "root").await;

    let theirs = format!("/v1/tenants/globex/webhooks/{id}");
    let (status, _) = call_as(&app, &admin_token, Method::GET, &theirs, None).await;
    assert_eq!(status, 404, "another tenant's admin finds nothing");
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/v1/tenants/acme/webhooks/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "not under another tenant's path either");
    let (status, _) = call_as(
        &app,
        &member.token,
        Method::GET,
        "/v1/tenants/acme/webhooks",
        None,
    )
    .await;
    assert_eq!(status, 403, "a member may not");
    let (status, body) = call_as(
        &app,
        &admin_token,
        Method::POST,
        "/v1/tenants/acme/webhooks",
        Some(json!({ "url": "https://h.example.com/", "events": ["*"] })),
    )
    .await;
    assert_eq!(status, 201, "the tenant's admin may: {body}");
}

/// With private addresses not allowed (the default), loopback, private,
/// link-local and metadata addresses are refused when saved, by literal or
/// by name, and so is `http://`.
#[tokio::test]
async fn the_ssrf_guard_refuses_private_addresses_when_saved() {
    let mut settings = test_settings();
    settings.webhooks.allow_private = false;
    let app = spawn_app_with(settings).await;
    app.create_tenant("acme").await;
    for url in [
        "http://hooks.example.com/",
        "https://127.0.0.1/",
        "https://localhost:8443/x",
        "https://[::1]/",
        "https://10.0.0.8/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
        "https://[::ffff:127.0.0.1]/",
    ] {
        let (status, body) = call(
            &app,
            Method::POST,
            "/v1/tenants/acme/webhooks",
            Some(json!({ "url": url, "events": ["*"] })),
        )
        .await;
        assert_eq!(status, 400, "{url} → {body}");
        assert_eq!(body["field"], "url", "{body}");
    }
}
