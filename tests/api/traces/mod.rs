//! OpenTelemetry traces, exported by the real binary to a receiver of the
//! test's own (OTLP over HTTP, decoded): a login's trace and its children,
//! W3C Trace Context in and out, the sampler, a collector that is down or
//! failing, and no secret in any exported byte.

mod receiver;

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::{Value, json};
use tenant_jwt::config::{MasterKeySource, Settings};

use crate::helpers::binary::Running;
use crate::helpers::{PASSWORD, service_key, test_settings};
use receiver::{OtlpReceiver, attribute};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// The binary, exporting to `endpoint` with `extra` variables, ready.
async fn traced(settings: &Settings, endpoint: &str, extra: &[(&str, &str)]) -> Running {
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    env.extend_from_slice(extra);
    let running = Running::start_with(settings, &env);
    assert!(running.readyz_answers(200).await, "the binary starts");
    running
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A tenant with one user; the login's answer.
async fn log_in(app: &Running, traceparent: Option<&str>) -> (u16, Value, Option<String>) {
    let tenant = app
        .client
        .post(app.url("/v1/tenants"))
        .bearer_auth(service_key())
        .json(&json!({ "slug": "acme", "name": "Acme" }))
        .send()
        .await
        .unwrap();
    assert_eq!(tenant.status(), 201);
    let user = app
        .client
        .post(app.url("/v1/tenants/acme/users"))
        .bearer_auth(service_key())
        .json(&json!({ "username": "alice", "password": PASSWORD, "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), 201);
    let mut login = app
        .client
        .post(app.url("/v1/tenants/acme/login"))
        .json(&json!({ "username": "alice", "password": PASSWORD }));
    if let Some(traceparent) = traceparent {
        login = login.header("traceparent", traceparent);
    }
    let login = login.send().await.unwrap();
    let answered = login
        .headers()
        .get("traceparent")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        login.status().as_u16(),
        login.json().await.unwrap(),
        answered,
    )
}

/// Whether `span` descends from the span with id `ancestor` among `all`.
fn descends(span: &Span, ancestor: &[u8], all: &[(String, Span)]) -> bool {
    let mut parent = span.parent_span_id.clone();
    for _ in 0..16 {
        if parent == ancestor {
            return true;
        }
        let Some((_, next)) = all.iter().find(|(_, s)| s.span_id == parent) else {
            return false;
        };
        parent = next.parent_span_id.clone();
    }
    false
}

#[tokio::test]
async fn a_login_is_one_trace_under_the_callers_with_postgres_and_hash_spans() {
    let settings = test_settings();
    let collector = OtlpReceiver::start(200);
    let app = traced(&settings, &collector.endpoint, &[]).await;
    let incoming = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let (status, body, answered) = log_in(&app, Some(&incoming)).await;
    assert_eq!(status, 200);
    let answered = answered.expect("the answer carries traceparent");
    assert!(
        answered.starts_with(&format!("00-{CALLER_TRACE}-")) && !answered.contains(CALLER_SPAN),
        "the answer names our span in the caller's trace: {answered}"
    );
    let served_by = answered.split('-').nth(2).unwrap().to_owned();

    let spans = collector
        .wait_for(Duration::from_secs(10), |spans| {
            spans.iter().any(|(_, s)| hex(&s.span_id) == served_by)
                && spans
                    .iter()
                    .any(|(_, s)| s.name.starts_with("password_hash"))
        })
        .await;
    let in_trace: Vec<(String, Span)> = spans
        .into_iter()
        .filter(|(_, s)| hex(&s.trace_id) == CALLER_TRACE)
        .collect();
    let (service, server) = in_trace
        .iter()
        .find(|(_, s)| hex(&s.span_id) == served_by)
        .expect("the server span is exported");
    assert_eq!(service, "tenant-jwt");
    assert_eq!(server.name, "POST /v1/tenants/{tenant}/login");
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(
        hex(&server.parent_span_id),
        CALLER_SPAN,
        "the caller's span is the parent"
    );
    assert_eq!(
        attribute(server, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        attribute(server, "http.route").as_deref(),
        Some("/v1/tenants/{tenant}/login")
    );
    assert_eq!(
        attribute(server, "url.path").as_deref(),
        Some("/v1/tenants/acme/login")
    );
    assert_eq!(
        attribute(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert!(attribute(server, "client.address").is_some());

    let postgres: Vec<&Span> = in_trace
        .iter()
        .map(|(_, s)| s)
        .filter(|s| attribute(s, "db.system.name").as_deref() == Some("postgresql"))
        .collect();
    assert!(
        !postgres.is_empty(),
        "Postgres statements are spans of the trace"
    );
    for statement in &postgres {
        assert!(descends(statement, &server.span_id, &in_trace));
        assert_eq!(statement.kind, SpanKind::Client as i32);
        assert!(attribute(statement, "db.operation.name").is_some());
    }
    assert!(
        postgres
            .iter()
            .any(|s| attribute(s, "db.collection.name").as_deref() == Some("users")),
        "the user is read: {:?}",
        postgres.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let hash = in_trace
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "password_hash verify")
        .expect("the password check is a span");
    assert!(descends(hash, &server.span_id, &in_trace));
    assert!(attribute(hash, "password_hash.queue_wait_ms").is_some());

    // A failed call: an error span with the stable code, not the reason.
    let refused = app
        .client
        .get(app.url("/v1/me"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let spans = collector
        .wait_for(Duration::from_secs(10), |spans| {
            spans.iter().any(|(_, s)| s.name == "GET /v1/me")
        })
        .await;
    let (_, me) = spans.iter().find(|(_, s)| s.name == "GET /v1/me").unwrap();
    assert_eq!(me.status.as_ref().map(|s| s.code), Some(2), "an error span");
    assert_eq!(
        attribute(me, "error.type").as_deref(),
        Some("invalid_token")
    );

    // Nothing secret in any byte sent.
    let sent = String::from_utf8_lossy(&collector.bytes()).into_owned();
    let MasterKeySource::Inline(master_key) = &settings.master_key else {
        unreachable!()
    };
    for (what, secret) in [
        (
            "access token",
            body["access_token"].as_str().unwrap().to_owned(),
        ),
        (
            "refresh token",
            body["refresh_token"].as_str().unwrap().to_owned(),
        ),
        ("password", PASSWORD.to_owned()),
        ("service key", service_key()),
        ("master key", master_key.to_string()),
    ] {
        assert!(!sent.contains(&secret), "the {what} was exported");
    }

    // The request's log lines lead to its trace; shutdown flushes and exits.
    app.sigterm();
    let logs = app.exits_cleanly().await;
    assert!(
        logs.lines().any(|line| line.contains("request completed")
            && line.contains(&format!("\"trace_id\":\"{CALLER_TRACE}\""))
            && line.contains(&format!("\"span_id\":\"{served_by}\""))),
        "the login's log line carries its trace and span ids"
    );
}

#[tokio::test]
async fn a_sampler_ratio_of_zero_exports_nothing() {
    let collector = OtlpReceiver::start(200);
    let app = traced(
        &test_settings(),
        &collector.endpoint,
        &[("OTEL_TRACES_SAMPLER_ARG", "0")],
    )
    .await;
    let (status, _, answered) = log_in(&app, None).await;
    assert_eq!(status, 200);
    assert!(answered.is_some_and(|t| t.ends_with("-00")), "not sampled");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(collector.spans().len(), 0, "no span exported");
}

/// A collector that answers 503, and one that is not there at all: the
/// requests do not notice.
#[tokio::test]
async fn a_failing_or_missing_collector_costs_requests_nothing() {
    let failing = OtlpReceiver::start(503);
    let nowhere = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    for endpoint in [failing.endpoint.clone(), nowhere] {
        let app = traced(&test_settings(), &endpoint, &[]).await;
        let (status, body, _) = log_in(&app, None).await;
        assert_eq!(status, 200);
        let token = body["access_token"].as_str().unwrap();
        let mut slowest = Duration::ZERO;
        for _ in 0..200 {
            let started = Instant::now();
            let me = app
                .client
                .get(app.url("/v1/me"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            slowest = slowest.max(started.elapsed());
            assert_eq!(me.status(), 200);
        }
        assert!(slowest < Duration::from_millis(500), "slowest {slowest:?}");
    }
    assert!(failing.requests() > 0, "the failing collector was tried");
}
