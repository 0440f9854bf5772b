//! Every authenticated route answers a bad credential (401), a credential
//! without the route's scope or a member's token on an admin route (403)
//! before it reads or parses anything else of the request. The routes come
//! from the OpenAPI document, so a new route is covered without a new test.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, service_key, spawn_app_with, test_settings};

/// A query and a body that every route refuses to parse.
const BAD_QUERY: &str = "limit=bad&after=%zz&role=root&expires_in=x";
const BAD_BODY: &str = "{bad";

struct Operation {
    method: String,
    /// The path with its parameters filled in.
    path: String,
    /// The scopes a service key needs, if service keys may call it.
    service_scopes: Option<Vec<String>>,
    /// Whether a user's access token may call it.
    access_token: bool,
}

/// Every operation of the document that names a security requirement.
async fn authenticated_operations(app: &TestApp) -> Vec<Operation> {
    let spec: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut operations = Vec::new();
    for (template, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(security) = operation["security"].as_array() else {
                continue;
            };
            let scheme = |name: &str| {
                security
                    .iter()
                    .find_map(|requirement| requirement.get(name))
                    .map(|scopes| {
                        scopes
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|s| s.as_str().unwrap().to_owned())
                            .collect::<Vec<_>>()
                    })
            };
            operations.push(Operation {
                method: method.to_ascii_uppercase(),
                path: filled(template),
                service_scopes: scheme("service_key"),
                access_token: scheme("access_token").is_some(),
            });
        }
    }
    assert!(
        operations.len() >= 20,
        "the document lists {} authenticated operations",
        operations.len()
    );
    operations
}

/// `template` with every `{parameter}` given a well-formed value.
fn filled(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            "{tenant}" => "acme",
            "{path}" => "orders",
            s if s.starts_with('{') => "0190a4b2-7c1e-7d3a-9f4e-2b8c6d1e0f3a",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The status of `operation` called with `credential`, a bad query and a
/// bad JSON body.
async fn status_with(app: &TestApp, operation: &Operation, credential: &str) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(operation.method.as_bytes()).unwrap();
    let response = app
        .client
        .request(method, app.url(&format!("{}?{BAD_QUERY}", operation.path)))
        .bearer_auth(credential)
        .header("Content-Type", "application/json")
        .body(BAD_BODY)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// The status line of `operation` called with `credential` and a body that
/// never finishes arriving: answered at once when the credential is refused.
async fn status_line_with_a_stalled_body(
    app: &TestApp,
    operation: &Operation,
    credential: &str,
) -> String {
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "{} {}?{BAD_QUERY} HTTP/1.1\r\nHost: tenant-jwt\r\nAuthorization: Bearer {credential}\r\n\
         Content-Type: application/json\r\nContent-Length: 10000\r\n\r\n{BAD_BODY}",
        operation.method, operation.path
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    let read = async {
        while !seen.windows(2).any(|w| w == b"\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    // The body timeout is a minute: an answer within seconds was not
    // waiting for the body.
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    let text = String::from_utf8_lossy(&seen);
    text.lines().next().unwrap_or("(no answer)").to_owned()
}

/// A stored credential holding `audit:read` only.
async fn audit_reader(app: &TestApp) -> String {
    let created = app
        .client
        .post(app.url("/v1/service-credentials"))
        .bearer_auth(service_key())
        .json(&json!({"name": "audit reader", "scopes": ["audit:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    created["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_refused_caller_is_answered_before_the_body_or_the_query_is_read() {
    let mut settings = test_settings();
    settings.http.body_timeout = Duration::from_secs(60);
    let app = spawn_app_with(settings).await;
    let member = app.tenant_with_user("acme", "alice").await;
    let reader = audit_reader(&app).await;
    let operations = authenticated_operations(&app).await;

    let mut wrong = Vec::new();
    for operation in &operations {
        let name = format!("{} {}", operation.method, operation.path);
        // An invalid credential: 401, whatever the body and the query.
        let (status, body) = status_with(&app, operation, "nope").await;
        if status != 401 || (operation.method != "HEAD" && body["code"] != "invalid_token") {
            wrong.push(format!("{name} with a bad token: {status} {body}"));
        }
        let line = status_line_with_a_stalled_body(&app, operation, "nope").await;
        if !line.starts_with("HTTP/1.1 401") {
            wrong.push(format!(
                "{name} with a bad token and a stalled body: {line}"
            ));
        }
        // A credential without the scope: 403 (the first call loads it,
        // the second finds it cached).
        if let Some(scopes) = &operation.service_scopes
            && !scopes.is_empty()
            && !scopes.iter().any(|scope| scope == "audit:read")
        {
            for attempt in ["loaded", "cached"] {
                let (status, body) = status_with(&app, operation, &reader).await;
                if status != 403
                    || (operation.method != "HEAD" && body["code"] != "insufficient_scope")
                {
                    wrong.push(format!(
                        "{name} without the scope ({attempt}): {status} {body}"
                    ));
                }
            }
            let line = status_line_with_a_stalled_body(&app, operation, &reader).await;
            if !line.starts_with("HTTP/1.1 403") {
                wrong.push(format!("{name} without the scope, a stalled body: {line}"));
            }
        }
        // A member's valid token on an admin route: 403.
        let admin_route = operation.access_token
            && operation
                .service_scopes
                .as_ref()
                .is_some_and(|scopes| !scopes.is_empty());
        if admin_route {
            let (status, _) = status_with(&app, operation, &member.token).await;
            if status != 403 {
                wrong.push(format!("{name} with a member's token: {status}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "answered after reading the request:\n{}",
        wrong.join("\n")
    );
}
