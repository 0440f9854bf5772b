//! Per-request observation: a request id (the caller's `X-Request-Id` if it
//! is well-formed, else a new one), echoed back and carried by a span around
//! the whole request so every log line of it names it (and, when traces are
//! exported, the server span: `trace_context`); the route-level
//! Prometheus metrics; the cause of a 503 or 500, logged once; and one
//! completion log line.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest, web};
use prometheus::{HistogramVec, IntCounterVec};

use super::problem::ApiError;
use super::trace_context::RequestSpans;
use crate::metrics::{Area, Metrics};

/// Requests by route, method and status, and their latency.
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl Area for HttpMetrics {
    fn register(metrics: &Metrics) -> Self {
        let labels = &["route", "method", "status"];
        Self {
            requests: metrics.counter_vec(
                "http_requests_total",
                "HTTP requests by route, method and status",
                labels,
            ),
            duration: metrics.histogram_vec(
                "http_request_duration_seconds",
                "HTTP request latency by route",
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
                labels,
            ),
        }
    }
}

impl HttpMetrics {
    fn request(&self, route: &str, method: &str, status: &str, seconds: f64) {
        let labels = [route, method, status];
        self.requests.with_label_values(&labels).inc();
        self.duration.with_label_values(&labels).observe(seconds);
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The id of the request being served, kept in its extensions as the
/// header value it is echoed in (checked ASCII, so also a `str`).
#[derive(Debug, Clone)]
pub struct RequestId(HeaderValue);

impl RequestId {
    fn as_str(&self) -> &str {
        // Only ever made from checked ASCII (`incoming_id`, a UUID).
        self.0.to_str().unwrap_or_default()
    }
}

/// The current request's id (set by [`observe`]).
pub fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions()
        .get::<RequestId>()
        .map(|id| id.as_str().to_owned())
}

/// The caller's `X-Request-Id` if well-formed (shared, not copied).
fn incoming_id(req: &ServiceRequest) -> Option<RequestId> {
    req.headers()
        .get(&REQUEST_ID)
        .filter(|id| {
            (1..=128).contains(&id.len())
                && id
                    .as_bytes()
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
        })
        .cloned()
        .map(RequestId)
}

/// A new id: a random UUID, formatted once into its header value.
fn new_id() -> RequestId {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    RequestId(HeaderValue::from_str(text).expect("a UUID is a valid header value"))
}

/// A bounded label for the method: clients may send any token as a method,
/// and every distinct label value is a new time series.
fn metric_method(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = incoming_id(&req).unwrap_or_else(new_id);
    req.extensions_mut().insert(id.clone());
    // The route pattern, never the raw path: bounded label values, no ids.
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = metric_method(req.method());
    let metrics = req.app_data::<web::Data<HttpMetrics>>().cloned();
    let mut spans = RequestSpans::start(&req, id.as_str(), method, &route);

    let started = Instant::now();
    let mut response = spans.serve(next.call(req)).await?;
    let elapsed = started.elapsed();

    let status = response.status();
    response.headers_mut().insert(REQUEST_ID, id.0);
    if let Some(traceparent) = spans.take_traceparent() {
        response.headers_mut().insert(TRACEPARENT, traceparent);
    }
    if let Some(metrics) = metrics {
        metrics.request(&route, method, status.as_str(), elapsed.as_secs_f64());
    }
    let status = status.as_u16();
    let failure = response
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>());
    spans.finish(status, failure);
    spans.log().in_scope(|| {
        if let Some(failure) = failure {
            failure.log_cause();
        }
        tracing::info!(
            status,
            latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "request completed"
        );
    });
    Ok(response)
}
