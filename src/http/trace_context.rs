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
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, SpanKind, Status, TraceContextExt, Tracer as _,
};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::{Instrument, Span};

use super::problem::ApiError;
use super::span_names as names;
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
        let names = names::of(method, route);
        // The sampler decides here; a span sampled out records nothing.
        let span = tracer.build_with_context(
            SpanBuilder::from_name(names.span).with_kind(SpanKind::Server),
            &parent,
        );
        let ids = span.span_context();
        let sampled = ids.is_sampled();
        // Formatted once, for the answer's header and the log's fields.
        let traceparent = traceparent(ids);
        let text = traceparent.to_str().unwrap_or_default();
        let log = tracing::info_span!(
            "request",
            request_id,
            method,
            route,
            trace_id = %text.get(TRACE_ID).unwrap_or_default(),
            span_id = %text.get(SPAN_ID).unwrap_or_default()
        );
        let server = sampled.then(|| {
            let context = parent.with_span(span);
            describe(&context, req, method, names.route);
            context
        });
        Self {
            log,
            server,
            traceparent: Some(traceparent),
        }
    }

    /// The span every log line of the request names.
    pub fn log(&self) -> &Span {
        &self.log
    }

    /// The answer's `traceparent`, naming the span that served it.
    pub fn take_traceparent(&mut self) -> Option<HeaderValue> {
        self.traceparent.take()
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
    route: &'static str,
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
    // A path without ids is its route: the same text, not another copy.
    let path = match req.path() {
        path if path == route => Value::from(route),
        path => Value::from(path.to_owned()),
    };
    let mut attributes = Vec::with_capacity(7);
    attributes.extend([
        KeyValue::new("http.request.method", method),
        KeyValue::new("http.route", route),
        KeyValue::new("url.path", path),
    ]);
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
    context.span().set_attributes(attributes);
}

/// Where the trace id and the span id are in a `traceparent`
/// (`00-{trace id}-{span id}-{flags}`).
const TRACE_ID: std::ops::Range<usize> = 3..35;
const SPAN_ID: std::ops::Range<usize> = 36..52;

/// `traceparent` for the span `ids` name: `00-{trace id}-{span id}-{flags}`
/// in lowercase hex.
fn traceparent(ids: &SpanContext) -> HeaderValue {
    fn hex(bytes: &[u8], out: &mut [u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0xf)];
        }
    }
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex(&ids.trace_id().to_bytes(), &mut text[TRACE_ID]);
    hex(&ids.span_id().to_bytes(), &mut text[SPAN_ID]);
    hex(&[ids.trace_flags().to_u8()], &mut text[53..]);
    HeaderValue::from_bytes(&text).expect("hex digits and dashes")
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

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::{SPAN_ID, TRACE_ID, traceparent};

    #[test]
    fn the_log_fields_are_the_traceparent_ids() {
        let ids = SpanContext::new(
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
            SpanId::from_hex("b7ad6b7169203331").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let header = traceparent(&ids);
        let text = header.to_str().unwrap();
        assert_eq!(
            text,
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        assert_eq!(&text[TRACE_ID], ids.trace_id().to_string());
        assert_eq!(&text[SPAN_ID], ids.span_id().to_string());
    }
}
