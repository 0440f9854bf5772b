//! A tenant's roles and who holds them: the admin API (CRUD, `If-Match`,
//! limits, assignments), each write moving the tenant's `authz_version` and
//! audited; confined to the caller's tenant and scopes (`access`).

mod access;
mod answers;
mod check;

use reqwest::Method;
use serde_json::{Value, json};

use tenant_jwt::types::ids::UserId;

use crate::helpers::{TestApp, service_key, spawn_app};

/// A call as the root key: status, headers and JSON body (null if none).
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    if_match: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    call_as(app, &service_key(), method, path, body, if_match).await
}

async fn call_as(
    app: &TestApp,
    bearer: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    if_match: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(bearer);
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(tag) = if_match {
        request = request.header("If-Match", tag);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

fn header(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers[name].to_str().unwrap().to_owned()
}

fn version(headers: &reqwest::header::HeaderMap) -> i64 {
    header(headers, "authz-version").parse().unwrap()
}

/// Gives `user` of tenant `acme` exactly `roles` (as the root key); the
/// tenant's new `authz_version`.
async fn assign(app: &TestApp, user: UserId, roles: &[&str]) -> i64 {
    let path = format!("/v1/tenants/acme/users/{user}/roles");
    let (status, headers, body) = call(
        app,
        Method::PUT,
        &path,
        Some(json!({ "roles": roles })),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    version(&headers)
}

async fn create_role(app: &TestApp, name: &str, permissions: &[&str]) -> (String, i64) {
    let (status, headers, body) = call(
        app,
        Method::POST,
        "/v1/tenants/acme/roles",
        Some(json!({"name": name, "permissions": permissions})),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["authz_version"].as_i64(), Some(version(&headers)));
    (header(&headers, "etag"), version(&headers))
}

#[tokio::test]
async fn roles_are_created_read_listed_changed_and_deleted_each_write_moving_the_version() {
    let app = spawn_app().await;
    app.tenant_with_user("acme", "alice").await;
    let (etag, v1) = create_role(
        &app,
        "invoice-approver",
        &["invoices:approve", "invoices:read"],
    )
    .await;
    let (_, v2) = create_role(&app, "auditor", &["reports:*"]).await;
    let (_, v3) = create_role(&app, "root", &["*"]).await;
    assert!(v1 < v2 && v2 < v3, "versions grow: {v1} {v2} {v3}");

    let (status, headers, role) = call(
        &app,
        Method::GET,
        "/v1/tenants/acme/roles/invoice-approver",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "etag"),
        etag,
        "the ETag a write gave is the one read"
    );
    assert_eq!(
        role["permissions"],
        json!(["invoices:approve", "invoices:read"])
    );
    assert_eq!(role["description"], "");

    // Listed by name, in pages.
    let (_, _, page) = call(
        &app,
        Method::GET,
        "/v1/tenants/acme/roles?limit=2",
        None,
        None,
    )
    .await;
    let names: Vec<&str> = page["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["auditor", "invoice-approver"]);
    assert_eq!(page["next_after"], "invoice-approver");
    let (_, _, rest) = call(
        &app,
        Method::GET,
        "/v1/tenants/acme/roles?limit=2&after=invoice-approver",
        None,
        None,
    )
    .await;
    assert_eq!(rest["roles"][0]["name"], "root");
    assert_eq!(rest["next_after"], Value::Null);

    // A change against the current ETag passes and moves it on...
    let patch =
        json!({"permissions": ["invoices:approve", "invoices:void"], "description": "approves"});
    let path = "/v1/tenants/acme/roles/invoice-approver";
    let (status, headers, changed) =
        call(&app, Method::PATCH, path, Some(patch.clone()), Some(&etag)).await;
    assert_eq!(status, 200, "{changed}");
    assert_ne!(header(&headers, "etag"), etag);
    assert!(version(&headers) > v3);
    assert_eq!(
        changed["permissions"],
        json!(["invoices:approve", "invoices:void"])
    );
    assert_eq!(changed["description"], "approves");
    // ...and a second admin's change against the old one is refused whole.
    let stale = json!({"permissions": ["*"]});
    let (status, _, problem) = call(&app, Method::PATCH, path, Some(stale), Some(&etag)).await;
    assert_eq!(status, 412);
    assert_eq!(problem["code"], "precondition_failed");
    let (_, _, now) = call(&app, Method::GET, path, None, None).await;
    assert_eq!(
        now["permissions"], changed["permissions"],
        "nothing changed"
    );
    let (status, _, _) = call(&app, Method::DELETE, path, None, Some(&etag)).await;
    assert_eq!(status, 412, "a stale deletion is refused too");

    let (status, headers, _) = call(&app, Method::DELETE, path, None, None).await;
    assert_eq!(status, 204);
    assert!(version(&headers) > v3);
    let (status, _, problem) = call(&app, Method::GET, path, None, None).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("not_found")));

    // Audited, each in its own transaction.
    let log = app.service_get("/v1/tenants/acme/audit-events").await;
    let events: Vec<&Value> = log["events"].as_array().unwrap().iter().collect();
    let of = |action: &str| events.iter().filter(|e| e["action"] == action).count();
    assert_eq!(
        (of("role_created"), of("role_updated"), of("role_deleted")),
        (3, 1, 1)
    );
    let updated = events
        .iter()
        .find(|e| e["action"] == "role_updated")
        .unwrap();
    assert_eq!(updated["details"]["added"], json!(["invoices:void"]));
    assert_eq!(updated["details"]["removed"], json!(["invoices:read"]));
}

#[tokio::test]
async fn bad_input_and_limits_get_a_clear_problem() {
    let app = spawn_app().await;
    app.tenant_with_user("acme", "alice").await;
    create_role(&app, "billing", &["billing:*"]).await;
    let create = |body: Value| {
        call(
            &app,
            Method::POST,
            "/v1/tenants/acme/roles",
            Some(body),
            None,
        )
    };
    for (body, code, field) in [
        (
            json!({"name": "Billing", "permissions": []}),
            "validation_failed",
            "name",
        ),
        (
            json!({"name": "x", "permissions": ["invoices:*:approve"]}),
            "validation_failed",
            "permissions",
        ),
        (
            json!({"name": "x", "permissions": ["Invoices"]}),
            "validation_failed",
            "permissions",
        ),
        (
            json!({"name": "x", "permissions": ["in voices"]}),
            "validation_failed",
            "permissions",
        ),
        (
            json!({"name": "x", "permissions": ["a::b"]}),
            "validation_failed",
            "permissions",
        ),
        (
            json!({"name": "x", "permissions": [], "description": "d".repeat(501)}),
            "validation_failed",
            "description",
        ),
    ] {
        let (status, _, problem) = create(body.clone()).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (400, Some(code)),
            "{body}"
        );
        assert_eq!(problem["field"], field, "{body}");
    }
    let many: Vec<String> = (0..201).map(|n| format!("p:{n}")).collect();
    let (status, _, problem) = create(json!({"name": "x", "permissions": many})).await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (400, Some("permissions")),
        "201 patterns"
    );
    let (status, _, problem) = create(json!({"name": "billing", "permissions": []})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("role_exists"))
    );

    // 500 roles per tenant (499 more made in one statement, for speed).
    {
        use diesel_async::RunQueryDsl;
        let mut db = app.db().await;
        diesel::sql_query(
            "INSERT INTO roles (id, tenant_id, name, permissions) \
             SELECT gen_random_uuid(), t.id, 'r' || n, '{}' FROM tenants t, generate_series(1, 499) n \
             WHERE t.slug = 'acme'",
        )
        .execute(&mut db)
        .await
        .unwrap();
    }
    let (status, _, problem) = create(json!({"name": "one-more", "permissions": []})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("role_limit"))
    );
}

#[tokio::test]
async fn users_hold_roles_whose_union_they_are_granted_and_tokens_do_not_grow() {
    let app = spawn_app().await;
    let alice = app.tenant_with_user("acme", "alice").await;
    create_role(&app, "approver", &["invoices:approve"]).await;
    create_role(&app, "reader", &["invoices:read", "reports:*"]).await;
    let path = format!("/v1/tenants/acme/users/{}/roles", alice.id);
    let token_before = app.token("acme", "alice").await;

    let (status, headers, held) = call(
        &app,
        Method::PUT,
        &path,
        Some(json!({"roles": ["reader", "approver"]})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{held}");
    assert_eq!(held["roles"], json!(["approver", "reader"]));
    assert_eq!(
        held["permissions"],
        json!(["invoices:approve", "invoices:read", "reports:*"])
    );
    assert_eq!(held["authz_version"].as_i64(), Some(version(&headers)));
    let (_, _, read) = call(&app, Method::GET, &path, None, None).await;
    assert_eq!(read, held, "the read shows the last write");

    // An unknown role: 400 unknown_role, nothing changed.
    let (status, _, problem) = call(
        &app,
        Method::PUT,
        &path,
        Some(json!({"roles": ["reader", "ghost"]})),
        None,
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("unknown_role"))
    );
    let (_, _, unchanged) = call(&app, Method::GET, &path, None, None).await;
    assert_eq!(unchanged["roles"], held["roles"]);

    // A deleted role leaves every user that held it.
    call(
        &app,
        Method::DELETE,
        "/v1/tenants/acme/roles/approver",
        None,
        None,
    )
    .await;
    let (_, _, after) = call(&app, Method::GET, &path, None, None).await;
    assert_eq!(after["roles"], json!(["reader"]));
    assert!(after["authz_version"].as_i64() > held["authz_version"].as_i64());

    // 50 roles (the most one user holds): the token is the same size; and
    // the user's tokens stay valid.
    let names: Vec<String> = (0..50).map(|n| format!("role-{n:02}")).collect();
    for name in &names {
        create_role(&app, name, &["x:y", "z:*"]).await;
    }
    let (status, _, _) = call(
        &app,
        Method::PUT,
        &path,
        Some(json!({"roles": names})),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let mut too_many = names.clone();
    too_many.push("reader".into());
    let (status, _, problem) = call(
        &app,
        Method::PUT,
        &path,
        Some(json!({"roles": too_many})),
        None,
    )
    .await;
    assert_eq!((status, problem["field"].as_str()), (400, Some("roles")));
    let token_after = app.token("acme", "alice").await;
    assert_eq!(
        token_after.len(),
        token_before.len(),
        "no permissions in tokens"
    );
    assert_eq!(app.me(&token_before).await.status(), 200);

    let log = app
        .service_get("/v1/tenants/acme/audit-events?limit=200")
        .await;
    let change = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "user_roles_changed")
        .unwrap();
    assert_eq!(
        change["details"],
        json!({"before": [], "after": ["approver", "reader"]})
    );
    assert_eq!(change["target_user_id"], alice.id.to_string());
}
