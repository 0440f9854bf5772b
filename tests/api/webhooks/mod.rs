//! Security-event webhooks: endpoints (`endpoints`), delivery to a real
//! receiver, signed and retried (`delivery`), across instances and crashes
//! (`instances`), with signatures checked by our own reading of the
//! specification and by the official Python library.

mod delivery;
mod endpoints;
mod instances;
mod keys;
pub(crate) mod receiver;

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, service_key};
use receiver::Received;

/// A call as the root key: status and JSON body (null if none).
async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    call_as(app, &service_key(), method, path, body).await
}

async fn call_as(
    app: &TestApp,
    bearer: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(bearer);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Adds an endpoint for `events` to `tenant`: its id and secret.
async fn add_endpoint(app: &TestApp, tenant: &str, url: &str, events: &[&str]) -> (String, String) {
    let (status, body) = call(
        app,
        Method::POST,
        &format!("/v1/tenants/{tenant}/webhooks"),
        Some(json!({ "url": url, "events": events })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["secret"].as_str().unwrap().to_owned(),
    )
}

/// A change that reports `role.created`.
async fn create_role(app: &TestApp, tenant: &str, name: &str) {
    let (status, body) = call(
        app,
        Method::POST,
        &format!("/v1/tenants/{tenant}/roles"),
        Some(json!({ "name": name, "permissions": ["reports:read"] })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// An endpoint's deliveries (first page of 200).
async fn deliveries(app: &TestApp, tenant: &str, endpoint: &str) -> Vec<Value> {
    let (status, body) = call(
        app,
        Method::GET,
        &format!("/v1/tenants/{tenant}/webhooks/{endpoint}/deliveries?limit=200"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().unwrap().clone()
}

/// Waits (`within` at most) until `endpoint`'s messages all have `status`.
async fn settle(
    app: &TestApp,
    tenant: &str,
    endpoint: &str,
    status: &str,
    within: Duration,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let listed = deliveries(app, tenant, endpoint).await;
        let done = !listed.is_empty() && listed.iter().all(|d| d["status"] == status);
        if done || std::time::Instant::now() > deadline {
            return listed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Our reading of the specification: one of the `v1,` signatures is the
/// HMAC-SHA256 of `{id}.{timestamp}.{body}` under the secret's bytes.
fn verifies(secret: &str, message: &Received) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let signed = format!("{}.{}.{}", message.id, message.timestamp, message.body);
    message.signature.split(' ').any(|part| {
        part.strip_prefix("v1,")
            .and_then(|sig| STANDARD.decode(sig).ok())
            .is_some_and(|sig| hmac::verify(&key, signed.as_bytes(), &sig).is_ok())
    })
}

/// The official Python library's verdict on every message (Python package
/// `standardwebhooks`; CI installs it). `None` where it is missing outside CI.
fn officially_verified(secret: &str, messages: &[Received]) -> Option<bool> {
    use std::io::Write;
    let present = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have the Python package standardwebhooks"
        );
        eprintln!("standardwebhooks (Python) missing: the official verifier is skipped");
        return None;
    }
    let input = json!({
        "secret": secret,
        "messages": messages.iter().map(|m| json!({
            "id": m.id, "timestamp": m.timestamp, "signature": m.signature, "body": m.body,
        })).collect::<Vec<_>>(),
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/webhooks/verify.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        eprintln!(
            "official verifier: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Some(out.status.success())
}
