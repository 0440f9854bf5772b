//! OpenTelemetry traces, configured the way every OpenTelemetry SDK is: by
//! the standard `OTEL_*` variables. With no OTLP endpoint set (or
//! `OTEL_SDK_DISABLED=true`) nothing is set up, `active()` is false and no
//! span beyond the request's log span is ever made: tracing costs nothing.
//!
//! Spans go out as OTLP over HTTP (protobuf), batched on the SDK's own
//! thread with a bounded queue: a collector that is slow or down costs
//! requests nothing; a span that finds the queue full is dropped and counted
//! (`otel_spans_dropped_total`). Only spans are exported, never log events,
//! and only ours (targets under `tenant_jwt`); what a span may carry is
//! decided where it is made (`http::trace_context`, `db::connection`,
//! `cache`, the password hasher, background work), never a token, secret,
//! password, key or header value.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
    SpanProcessor,
};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The service name when neither `OTEL_SERVICE_NAME` nor
/// `OTEL_RESOURCE_ATTRIBUTES` gives one.
const SERVICE_NAME: &str = "tenant-jwt";
/// Spans waiting for export at most; past it new ones are dropped.
const MAX_QUEUE: usize = 2048;
/// How long shutdown waits for queued spans to go out.
pub const DRAIN: Duration = Duration::from_secs(5);

static ACTIVE: AtomicBool = AtomicBool::new(false);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The target of every span made for tracing only: exported, never a log
/// span (the log layer skips it, the trace layer takes nothing else).
pub const TARGET: &str = "tenant_jwt::otel";

tokio::task_local! {
    /// Whether the work being done is part of a sampled trace.
    static TRACED: bool;
}

/// The tracer spans are made with while they are exported.
static TRACER: OnceLock<opentelemetry_sdk::trace::Tracer> = OnceLock::new();

/// Whether spans are exported (an endpoint is configured).
#[inline]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// The tracer, while spans are exported: for the spans made without
/// `tracing` (the server span of each request, `http::trace_context`).
pub fn tracer() -> Option<&'static opentelemetry_sdk::trace::Tracer> {
    TRACER.get().filter(|_| active())
}

/// Whether the work being done belongs to a sampled trace (a sampled
/// request, or sampled background work: `within`, `in_root_span`): where a
/// span exists only for tracing, it is made only then.
#[inline]
pub fn traced() -> bool {
    active() && TRACED.try_with(|traced| *traced).unwrap_or(false)
}

/// `work`, with `traced()` answering `traced` within it.
pub fn within<F: Future>(traced: bool, work: F) -> impl Future<Output = F::Output> {
    TRACED.scope(traced, work)
}

/// `work` as background work (no request behind it: the root of a trace of
/// its own, if the sampler takes it), while traces are exported.
pub async fn in_root_span<F: Future>(name: &'static str, work: F) -> F::Output {
    if !active() {
        return work.await;
    }
    let span = tracing::info_span!(target: TARGET, parent: None, "background", otel.name = name);
    let sampled = span.context().span().span_context().is_sampled();
    within(sampled, work.instrument(span)).await
}

/// Spans dropped because the export queue was full, in this process.
pub fn dropped_spans() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Spans dropped, caught up from the process's count at each rendering.
pub struct TraceMetrics {
    dropped: prometheus::IntCounter,
}

impl crate::metrics::Area for TraceMetrics {
    fn register(metrics: &crate::metrics::Metrics) -> Self {
        Self {
            dropped: metrics.counter(
                "otel_spans_dropped_total",
                "Trace spans dropped because the export queue was full (in this process)",
            ),
        }
    }

    fn refresh(&self) {
        crate::metrics::catch_up(&self.dropped, dropped_spans());
    }
}

/// Where traces go, from `OTEL_SDK_DISABLED`,
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) and
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (with `/v1/traces` appended); `None`: off.
pub fn traces_endpoint(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return None;
    }
    if let Some(endpoint) = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Some(endpoint);
    }
    let base = set("OTEL_EXPORTER_OTLP_ENDPOINT")?;
    Some(format!("{}/v1/traces", base.trim_end_matches('/')))
}

/// The exporting provider, kept until exit: dropping it flushes what is
/// queued (within `DRAIN`).
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// Sets up export to `endpoint` (see `traces_endpoint`); the HTTP
    /// requests run on the current Tokio runtime. Sampler, headers and
    /// resource attributes come from the environment, as the SDK reads them.
    pub fn start(endpoint: String) -> anyhow::Result<(Self, opentelemetry_sdk::trace::Tracer)> {
        let client = RuntimeClient {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()?,
            runtime: tokio::runtime::Handle::try_current()?,
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .build()?;
        let queued = Arc::new(AtomicUsize::new(0));
        let batches = BatchSpanProcessor::builder(Counted {
            inner: exporter,
            queued: queued.clone(),
        })
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(MAX_QUEUE)
                .build(),
        )
        .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Bounded {
                inner: batches,
                queued,
            })
            .with_resource(resource())
            .with_sampler(sampler(|name| std::env::var(name).ok()))
            .build();
        let tracer = provider.tracer("tenant-jwt");
        let _ = TRACER.set(tracer.clone());
        ACTIVE.store(true, Ordering::Relaxed);
        Ok((Self { provider }, tracer))
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        ACTIVE.store(false, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown_with_timeout(DRAIN) {
            eprintln!("OpenTelemetry: not every queued span went out at shutdown: {e}");
        }
    }
}

/// `service.name` from `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES`,
/// else `tenant-jwt`; the other attributes from the latter.
fn resource() -> Resource {
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| {
            v.split(',')
                .any(|kv| kv.trim().starts_with("service.name="))
        });
    let builder = Resource::builder();
    match named {
        true => builder.build(),
        false => builder.with_service_name(SERVICE_NAME).build(),
    }
}

/// `OTEL_TRACES_SAMPLER` (default `parentbased_traceidratio`) with
/// `OTEL_TRACES_SAMPLER_ARG` (default 1.0) for the ratio samplers.
pub fn sampler(var: impl Fn(&str) -> Option<String>) -> Sampler {
    let ratio = var("OTEL_TRACES_SAMPLER_ARG")
        .and_then(|arg| arg.trim().parse::<f64>().ok())
        .filter(|r| (0.0..=1.0).contains(r))
        .unwrap_or(1.0);
    let name = var("OTEL_TRACES_SAMPLER").unwrap_or_default();
    let parent_based = |root| Sampler::ParentBased(Box::new(root));
    match name.trim() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio),
        "parentbased_always_on" => parent_based(Sampler::AlwaysOn),
        "parentbased_always_off" => parent_based(Sampler::AlwaysOff),
        _ => parent_based(Sampler::TraceIdRatioBased(ratio)),
    }
}

/// Keeps the export queue bounded and counts what it turns away: a span is
/// handed on only while fewer than `MAX_QUEUE` wait for the exporter, so
/// the batch processor (whose queue is as large) never drops one unseen.
#[derive(Debug)]
struct Bounded<P> {
    inner: P,
    queued: Arc<AtomicUsize>,
}

impl<P: SpanProcessor> SpanProcessor for Bounded<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx)
    }

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.queued.fetch_add(1, Ordering::Relaxed) >= MAX_QUEUE {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.inner.on_end(span)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

/// The exporter, telling `Bounded` how many spans left the queue.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.queued.fetch_sub(batch.len(), Ordering::Relaxed);
        self.inner.export(batch).await
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

/// The service's reqwest client for the exporter. The batch processor
/// exports from a thread of its own, outside any Tokio runtime, so each
/// request is run on the service's runtime and awaited from there.
#[derive(Debug)]
struct RuntimeClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let response = client.execute(request).await?.error_for_status()?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        });
        let (status, body) = sent.await??;
        Ok(Response::builder().status(status).body(body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::{Sampler, sampler, traces_endpoint};

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_endpoint_follows_the_specification() {
        assert_eq!(traces_endpoint(env(&[])), None);
        assert_eq!(
            traces_endpoint(env(&[(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://collector:4318/"
            )])),
            Some("http://collector:4318/v1/traces".into())
        );
        assert_eq!(
            traces_endpoint(env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://other:4318/custom"
                ),
            ])),
            Some("http://other:4318/custom".into()),
            "the traces endpoint is used as is"
        );
        assert_eq!(
            traces_endpoint(env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_SDK_DISABLED", "true"),
            ])),
            None
        );
    }

    #[test]
    fn the_sampler_is_parent_based_ratio_by_default() {
        let text = |vars: &[(&str, &str)]| format!("{:?}", sampler(env(vars)));
        let expect = |s: Sampler| format!("{s:?}");
        let ratio = |r| Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)));
        assert_eq!(text(&[]), expect(ratio(1.0)));
        assert_eq!(
            text(&[("OTEL_TRACES_SAMPLER_ARG", "0.01")]),
            expect(ratio(0.01))
        );
        assert_eq!(
            text(&[("OTEL_TRACES_SAMPLER", "always_off")]),
            expect(Sampler::AlwaysOff)
        );
        assert_eq!(
            text(&[("OTEL_TRACES_SAMPLER_ARG", "7")]),
            expect(ratio(1.0)),
            "a ratio out of range is ignored"
        );
    }
}
