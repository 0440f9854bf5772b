//! The request's spans while traces are exported
//! (`telemetry::otel::active`): the log span every line of the request
//! names (its id, method and route, and the trace's `trace_id` and
//! `span_id`), and the OpenTelemetry server span, the child of the caller's
//! W3C `traceparent` if it sent one. The server span is made with the SDK's
//! tracer rather than through `tracing` (it is no log span, and the bridge
//! would double its cost); the sampler decides as it is made, and only a
//! sampled request gets its attributes (named `METHOD /route/pattern`, the
//! HTTP semantic conventions) and child spans (`otel::traced`), which find
//! it as the current OpenTelemetry context. A request sampled out costs a
//! span id and the answer's `traceparent` (flags `00`). A failed request's
//! span is an error carrying the stable problem `code`, never the reason
//! behind it. Without export there is only the log span.

use std::borrow::Cow;
use std::future::Future;

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::web;
use futures_util::future::Either;
use opentelemetry::KeyValue;
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, SpanKind, Status, TraceContextExt, Tracer as _,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::{Instrument, Span};

use super::problem::ApiError;
use super::state::AppState;
use crate::telemetry::otel;

/// Longest `user_agent.original` kept.
const MAX_USER_AGENT: usize = 256;

/// The spans of one request.
pub struct RequestSpans {
    log: Span,
    /// The OpenTelemetry server span, in the context its children find it
    /// in, while the request is sampled.
    server: Option<opentelemetry::Context>,
    /// The answer's `traceparent`, while traces are exported.
    traceparent: Option<HeaderValue>,
}

impl RequestSpans {
    pub fn start(
        req: &ServiceRequest,
        request_id: &str,
        method: &'static str,
        route: &str,
    ) -> Self {
        let Some(tracer) = otel::tracer() else {
            return Self {
                log: tracing::info_span!("request", request_id, method, route),
                server: None,
                traceparent: None,
            };
        };
        let parent = TraceContextPropagator::new().extract(&Headers(req.headers()));
        // The sampler decides here; a span sampled out records nothing.
        let span = tracer.build_with_context(
            SpanBuilder::from_name("request").with_kind(SpanKind::Server),
            &parent,
        );
        let ids = span.span_context().clone();
        let log = tracing::info_span!(
            "request",
            request_id,
            method,
            route,
            trace_id = %ids.trace_id(),
            span_id = %ids.span_id()
        );
        let server = ids.is_sampled().then(|| {
            let context = parent.with_span(span);
            describe(&context, req, method, route);
            context
        });
        Self {
            log,
            server,
            traceparent: Some(traceparent(&ids)),
        }
    }

    /// The span every log line of the request names.
    pub fn log(&self) -> &Span {
        &self.log
    }

    /// The answer's `traceparent`, naming the span that served it.
    pub fn traceparent(&self) -> Option<HeaderValue> {
        self.traceparent.clone()
    }

    /// `work` within the request's spans: its own spans (`otel::traced`)
    /// are made only if the request is sampled, as children of the server
    /// span (the OpenTelemetry context current while `work` runs). A request
    /// not sampled (or with tracing off) runs in its log span alone.
    pub fn serve<F: Future>(&self, work: F) -> impl Future<Output = F::Output> {
        match &self.server {
            Some(context) => Either::Left(otel::within(true, work.with_context(context.clone()))),
            None => Either::Right(work),
        }
        .instrument(self.log.clone())
    }

    /// Records the outcome on the server span and ends it.
    pub fn finish(&self, status: u16, failure: Option<&ApiError>) {
        let Some(context) = &self.server else {
            return;
        };
        let span = context.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        let error: Option<Cow<'static, str>> = match failure {
            Some(failure) => Some(failure.code().into()),
            None if status >= 500 => Some(status.to_string().into()),
            None => None,
        };
        if let Some(error) = error {
            span.set_status(Status::error(error.clone()));
            span.set_attribute(KeyValue::new("error.type", error));
        }
        span.end();
    }
}

/// The server span's name and attributes (the HTTP semantic conventions):
/// the path with its ids but no query, the client through the
/// trusted-proxy rules, never a header beyond `Host` and `User-Agent`.
fn describe(
    context: &opentelemetry::Context,
    req: &ServiceRequest,
    method: &'static str,
    route: &str,
) {
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
    let host = text(header::HOST);
    let host = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let mut attributes = vec![
        KeyValue::new("http.request.method", method),
        KeyValue::new("http.route", route.to_owned()),
        KeyValue::new("url.path", req.path().to_owned()),
    ];
    if !host.is_empty() {
        attributes.push(KeyValue::new("server.address", host.to_owned()));
    }
    if cut > 0 {
        attributes.push(KeyValue::new(
            "user_agent.original",
            user_agent[..cut].to_owned(),
        ));
    }
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
        let client = state.limits.client_ip(req.request()).to_string();
        attributes.push(KeyValue::new("client.address", client));
    }
    let span = context.span();
    span.update_name(format!("{method} {route}"));
    span.set_attributes(attributes);
}

/// `traceparent` for the span `ids` name.
fn traceparent(ids: &SpanContext) -> HeaderValue {
    let text = format!(
        "00-{}-{}-{:02x}",
        ids.trace_id(),
        ids.span_id(),
        ids.trace_flags().to_u8()
    );
    HeaderValue::from_str(&text).expect("hex digits and dashes")
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
