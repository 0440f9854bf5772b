//! Introspection and `/v1/me` carry the user's roles and permissions as they
//! are now; introspection takes `min_version` in a form or JSON body.

use reqwest::Method;
use serde_json::{Value, json};

use super::{assign, call, create_role};
use crate::helpers::{TestApp, service_key, spawn_app, spawn_app_with, test_settings};

/// Introspection as the root key, with a form body or a JSON one.
async fn introspect(
    app: &TestApp,
    form: Option<&[(&str, &str)]>,
    json: Option<Value>,
) -> reqwest::Response {
    let request = app
        .client
        .post(app.url("/v1/introspect"))
        .bearer_auth(service_key());
    let request = match (form, json) {
        (Some(form), _) => request.form(form),
        (None, Some(json)) => request.json(&json),
        (None, None) => request,
    };
    request.send().await.unwrap()
}

#[tokio::test]
async fn introspection_and_me_answer_the_roles_and_permissions_held_now() {
    let app = spawn_app().await;
    let alice = app.tenant_with_user("acme", "alice").await;
    let introspected =
        async |token: &str| -> Value { app.introspect(token).await.json().await.unwrap() };
    let before = introspected(&alice.token).await;
    assert_eq!(before["active"], true);
    assert_eq!(before["roles"], json!([]));
    assert_eq!(before["permissions"], json!([]));
    let me: Value = app.me(&alice.token).await.json().await.unwrap();
    assert_eq!((&me["roles"], &me["permissions"]), (&json!([]), &json!([])));

    create_role(&app, "approver", &["invoices:approve", "reports:*"]).await;
    create_role(&app, "reader", &["reports:*", "invoices:read"]).await;
    assign(&app, alice.id, &["reader", "approver"]).await;
    let (_, _, held) = call(
        &app,
        Method::GET,
        &format!("/v1/tenants/acme/users/{}/roles", alice.id),
        None,
        None,
    )
    .await;
    // The same token, now holding two roles; one read against the version.
    let version = held["authz_version"].to_string();
    let form = [("token", alice.token.as_str()), ("min_version", &version)];
    let after: Value = introspect(&app, Some(&form), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["roles"], json!(["approver", "reader"]));
    assert_eq!(
        after["permissions"],
        json!(["invoices:approve", "invoices:read", "reports:*"]),
        "the union, sorted, each once"
    );
    assert_eq!(after["authz_version"], held["authz_version"]);
    assert_eq!(after["permissions"], held["permissions"]);
    let me: Value = app.me(&alice.token).await.json().await.unwrap();
    assert_eq!(me["roles"], after["roles"]);
    assert_eq!(me["permissions"], after["permissions"]);

    // An inactive token says nothing of roles.
    let inactive = introspected("not-a-token").await;
    assert_eq!(inactive, json!({"active": false}));
    // A bad min_version is a 400, in either body.
    for (form, json) in [("-1", json!(-1)), ("x", json!("3")), ("1.5", json!(1.5))] {
        let form_body = [("token", alice.token.as_str()), ("min_version", form)];
        let response = introspect(&app, Some(&form_body), None).await;
        assert_eq!(response.status(), 400, "form min_version={form}");
        let body = json!({"token": alice.token, "min_version": json});
        let response = introspect(&app, None, Some(body)).await;
        assert_eq!(response.status(), 400, "JSON min_version {json}");
    }
}

/// A write on A, then introspection on B with the version it returned:
/// exact at once, though B held an older view.
#[tokio::test]
async fn introspection_with_min_version_reads_the_last_write_on_another_instance() {
    let settings = test_settings();
    let (a, b) = (
        spawn_app_with(settings.clone()).await,
        spawn_app_with(settings).await,
    );
    let alice = a.tenant_with_user("acme", "alice").await;
    create_role(&a, "approver", &["invoices:approve"]).await;
    for round in 0..20 {
        // B holds a view (any introspection loads it).
        b.introspect(&alice.token).await;
        let roles: &[&str] = if round % 2 == 0 { &["approver"] } else { &[] };
        let version = assign(&a, alice.id, roles).await;
        let body = json!({"token": alice.token, "min_version": version});
        let answer: Value = introspect(&b, None, Some(body)).await.json().await.unwrap();
        assert_eq!(answer["roles"], json!(roles), "round {round}");
        assert!(answer["authz_version"].as_i64().unwrap() >= version);
    }
}
