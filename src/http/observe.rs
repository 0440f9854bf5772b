//! Per-request observation: a request id (the caller's `X-Request-Id` if it
//! is well-formed, else a new one), echoed back and carried by a span around
//! the whole request so every log line of it names it; the route-level
//! Prometheus metrics; the cause of a 503 or 500, logged once; and one
//! completion log line.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest, web};
use tracing::Instrument;

use super::problem::ApiError;
use super::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, kept in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The current request's id (set by [`observe`]).
pub fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<RequestId>().map(|id| id.0.clone())
}

fn incoming_id(req: &ServiceRequest) -> Option<String> {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
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
    let id = incoming_id(&req).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    // The route pattern, never the raw path: bounded label values, no ids.
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = metric_method(req.method());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let span = tracing::info_span!("request", request_id = %id, method, route = %route);

    let started = Instant::now();
    let mut response = next.call(req).instrument(span.clone()).await?;
    let elapsed = started.elapsed();

    let status = response.status().as_u16();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    if let Some(state) = state {
        state
            .metrics
            .http_request(&route, method, status, elapsed.as_secs_f64());
    }
    let failure = response
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>());
    span.in_scope(|| {
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
