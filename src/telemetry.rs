//! Logging through `tracing`: human or JSON lines, level from `RUST_LOG`
//! (default `info`). Every line logged while serving a request carries its
//! request id (see `http::observe`). Lines are formatted where they are
//! logged but written to standard error by a thread of their own, in
//! batches (`batched`), so a slow or blocked stderr never holds a request
//! worker and a request wakes no thread; if too much is waiting, lines are
//! dropped and counted (`log_lines_dropped_total`) rather than slow the
//! service down.
//!
//! actix logs every connection it closes for a malformed or oversized head,
//! a slow head or a broken stream at ERROR: any client could fill the logs
//! and page someone. Those events are not written; they are counted
//! (`connection_errors`, the `http_connection_errors_total` metric) and
//! summed up at WARN at most once per interval (`report_connection_errors`).

use std::io::IsTerminal as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod batched;
pub mod otel;

use batched::BatchedStderr;
pub use batched::FlushOnDrop;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Where actix's HTTP/1 connection handling logs.
const ACTIX_CONNECTIONS: &str = "actix_http::h1::dispatcher";

/// Connection errors actix reported in this process (the subscriber is
/// process-wide, so this count is too).
static CONNECTION_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Client connection errors seen so far in this process.
pub fn connection_errors() -> u64 {
    CONNECTION_ERRORS.load(Ordering::Relaxed)
}

/// The log writer, once `init` ran (for its count of dropped lines).
static WRITER: OnceLock<BatchedStderr> = OnceLock::new();

/// Log lines dropped because the writer thread fell behind.
pub fn dropped_log_lines() -> u64 {
    WRITER.get().map_or(0, BatchedStderr::dropped_lines)
}

/// Log lines dropped, caught up from the writer's count at each rendering.
pub struct LogMetrics {
    dropped: prometheus::IntCounter,
}

impl crate::metrics::Area for LogMetrics {
    fn register(metrics: &crate::metrics::Metrics) -> Self {
        Self {
            dropped: metrics.counter(
                "log_lines_dropped_total",
                "Log lines dropped because the log writer thread fell behind (in this process)",
            ),
        }
    }

    fn refresh(&self) {
        crate::metrics::catch_up(&self.dropped, dropped_log_lines());
    }
}

/// What must live until exit: the trace exporter (dropped first, flushing
/// queued spans) and the log writer (then writing what waits).
pub struct TelemetryGuard {
    _traces: Option<otel::Tracing>,
    _log_writer: FlushOnDrop,
}

/// Installs the global subscriber, writing to standard error from a thread
/// of its own, and exporting traces if an OTLP endpoint is configured
/// (`otel`). Keep the guard until exit.
pub fn init(format: LogFormat) -> anyhow::Result<TelemetryGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, log_writer) = BatchedStderr::start()?;
    let _ = WRITER.set(writer.clone());
    let traces = otel::traces_endpoint(|name| std::env::var(name).ok())
        .map(otel::Tracing::start)
        .transpose()?;
    let (traces, tracer) = traces.unzip();
    // Colours only for a person at a terminal: escape codes in a log file
    // or a collector are noise, and colouring each field costs CPU.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    install(format, filter, writer, tracer, colour);
    Ok(TelemetryGuard {
        _traces: traces,
        _log_writer: log_writer,
    })
}

/// Installs the global subscriber with any writer and no trace export; a
/// second call (as in tests) does nothing.
pub fn init_with<W>(format: LogFormat, filter: EnvFilter, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    install(format, filter, writer, None, false)
}

fn install<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    tracer: Option<opentelemetry_sdk::trace::Tracer>,
    colour: bool,
) where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(colour);
    // Spans made for tracing only are no log spans.
    let filter = filter.and(filter_fn(|meta| meta.target() != otel::TARGET));
    let lines = match format {
        LogFormat::Human => lines.boxed(),
        LogFormat::Json => lines
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    };
    // The spans made for tracing only: log events never leave as span
    // events, the log spans never as spans. A span's parent is its tracing
    // parent if that is such a span, else the current OpenTelemetry context
    // (a request's server span, `http::trace_context`): the layer itself
    // attaches no context.
    let traces = tracer.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_filter(filter_fn(|meta| {
                meta.is_span() && meta.target() == otel::TARGET
            }))
    });
    let _ = tracing_subscriber::registry()
        .with(ConnectionErrors)
        .with(lines.with_filter(filter))
        .with(traces)
        .try_init();
}

/// Counts actix's connection errors instead of letting them be written.
struct ConnectionErrors;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for ConnectionErrors {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() == Level::ERROR && meta.target() == ACTIX_CONNECTIONS {
            CONNECTION_ERRORS.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// Logs, at WARN and at most once per `interval`, how many client
/// connections actix closed for errors since the last report.
pub async fn report_connection_errors(interval: Duration) {
    let mut reported = connection_errors();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let seen = connection_errors();
        if seen > reported {
            tracing::warn!(
                closed = seen - reported,
                every = ?interval,
                "client connections closed for a malformed head, a timeout or a broken stream"
            );
            reported = seen;
        }
    }
}
