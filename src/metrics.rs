//! Prometheus metrics: one registry per application (not the process-global
//! default, so several instances in one process, as in tests, count apart),
//! rendered in the text format at `GET /metrics`.
//!
//! Each area of the service owns its metrics: a struct of its own, beside
//! its code, that implements `Area` and is registered on this registry the
//! first time it is asked for (`Metrics::area`). Adding a feature's metrics
//! touches that feature's files only. Components ask for their area once,
//! when they are built, and keep it: the hot paths take no lock.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus::core::Collector;
use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// An area's metrics.
pub trait Area: Send + Sync + 'static {
    /// Makes and registers the area's metrics. Called once per `Metrics`;
    /// must not ask for another area.
    fn register(metrics: &Metrics) -> Self;

    /// Brings values kept elsewhere up to date, just before each rendering.
    fn refresh(&self) {}
}

/// An area once registered, whatever its type.
trait Registered: Send + Sync {
    fn refresh(&self);
    fn any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<A: Area> Registered for A {
    fn refresh(&self) {
        Area::refresh(self)
    }

    fn any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    areas: Arc<Mutex<HashMap<TypeId, Arc<dyn Registered>>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            registry: Registry::new_custom(Some("tenant_jwt".into()), None).expect("valid prefix"),
            areas: Arc::default(),
        }
    }

    /// The metrics of area `A`, registered on first use.
    pub fn area<A: Area>(&self) -> Arc<A> {
        let mut areas = self.areas.lock().unwrap_or_else(|e| e.into_inner());
        let entry = areas
            .entry(TypeId::of::<A>())
            .or_insert_with(|| Arc::new(A::register(self)));
        entry
            .clone()
            .any()
            .downcast::<A>()
            .expect("an area is stored under its own type id")
    }

    fn registered<C: Collector + Clone + 'static>(&self, metric: C) -> C {
        self.registry
            .register(Box::new(metric.clone()))
            .expect("each metric is registered once");
        metric
    }

    pub fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.registered(IntCounter::new(name, help).expect("valid metric"))
    }

    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.registered(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    pub fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.registered(IntGauge::new(name, help).expect("valid metric"))
    }

    pub fn float_gauge(&self, name: &str, help: &str) -> Gauge {
        self.registered(Gauge::new(name, help).expect("valid metric"))
    }

    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.registered(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        buckets: Vec<f64>,
        labels: &[&str],
    ) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets);
        self.registered(HistogramVec::new(opts, labels).expect("valid metric"))
    }

    /// The Prometheus text exposition of every registered area, each
    /// refreshed first.
    pub fn render(&self) -> String {
        let areas: Vec<_> = {
            let areas = self.areas.lock().unwrap_or_else(|e| e.into_inner());
            areas.values().cloned().collect()
        };
        for area in areas {
            area.refresh();
        }
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .expect("the text encoding of gathered metrics cannot fail")
    }
}

/// `counter` caught up with a count kept elsewhere (process-wide counters
/// that are read, not incremented, here).
pub fn catch_up(counter: &IntCounter, seen: u64) {
    if let Some(new) = seen.checked_sub(counter.get()) {
        counter.inc_by(new);
    }
}

/// A gauge set from a count.
pub fn set_count(gauge: &IntGauge, n: usize) {
    gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Example {
        hits: IntCounter,
        refreshed: IntGauge,
    }

    impl Area for Example {
        fn register(metrics: &Metrics) -> Self {
            Self {
                hits: metrics.counter("example_hits_total", "Hits"),
                refreshed: metrics.gauge("example_refreshed", "Renderings"),
            }
        }

        fn refresh(&self) {
            self.refreshed.inc();
        }
    }

    #[test]
    fn an_area_is_registered_once_and_refreshed_at_each_rendering() {
        let metrics = Metrics::new();
        metrics.area::<Example>().hits.inc();
        metrics.area::<Example>().hits.inc();
        let text = metrics.render();
        assert!(text.contains("tenant_jwt_example_hits_total 2"), "{text}");
        assert!(text.contains("tenant_jwt_example_refreshed 1"), "{text}");
        assert!(metrics.render().contains("tenant_jwt_example_refreshed 2"));
    }
}
