//! The request's span as an OpenTelemetry server span (when traces are
//! exported, `telemetry::otel::active`): named `METHOD /route/pattern`,
//! with the HTTP semantic conventions' attributes, the child of the caller's
//! W3C `traceparent` if it sent one, its ids in every log line of the
//! request (`trace_id`, `span_id`) and in the answer's `traceparent`. A
//! failed request's span is an error carrying the stable problem `code`,
//! never the reason behind it. Without export the span is the plain log span
//! it always was.

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::web;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::problem::ApiError;
use super::state::AppState;
use crate::telemetry::otel;

/// Longest `user_agent.original` kept.
const MAX_USER_AGENT: usize = 256;

/// The span around the whole request, and the answer's `traceparent`
/// naming it (if traced).
pub fn server_span(
    req: &ServiceRequest,
    request_id: &str,
    method: &str,
    route: &str,
) -> (Span, Option<HeaderValue>) {
    if !otel::active() {
        return (
            tracing::info_span!("request", request_id, method, route),
            None,
        );
    }
    let client = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.limits.client_ip(req.request()).to_string());
    let text = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let user_agent = text(header::USER_AGENT);
    let mut cut = user_agent.len().min(MAX_USER_AGENT);
    while !user_agent.is_char_boundary(cut) {
        cut -= 1;
    }
    let user_agent = &user_agent[..cut];
    let host = text(header::HOST);
    let host = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let span = tracing::info_span!(
        "request",
        request_id,
        method,
        route,
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        url.path = req.path(),
        server.address = host,
        client.address = client.as_deref(),
        user_agent.original = user_agent,
        http.response.status_code = Empty,
        otel.status_code = Empty,
        error.type = Empty,
        trace_id = Empty,
        span_id = Empty,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(req.headers()));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    let context = span.context();
    let ids = context.span().span_context().clone();
    if !ids.is_valid() {
        return (span, None);
    }
    span.record("trace_id", tracing::field::display(ids.trace_id()));
    span.record("span_id", tracing::field::display(ids.span_id()));
    (span, Some(traceparent(&ids)))
}

/// `traceparent` for the span `ids` name.
fn traceparent(ids: &opentelemetry::trace::SpanContext) -> HeaderValue {
    let text = format!(
        "00-{}-{}-{:02x}",
        ids.trace_id(),
        ids.span_id(),
        ids.trace_flags().to_u8()
    );
    HeaderValue::from_str(&text).expect("hex digits and dashes")
}

/// Records the outcome on the server span.
pub fn finish(span: &Span, status: u16, failure: Option<&ApiError>) {
    if !otel::active() {
        return;
    }
    span.record("http.response.status_code", status);
    if let Some(failure) = failure {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", failure.code());
    } else if status >= 500 {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", status);
    }
}

/// The request's headers, as the propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
