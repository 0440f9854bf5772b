//! Prometheus metrics, one registry per application (not the process-global
//! default, so several instances in one process, as in tests, count apart).
//! Rendered in the text format at `GET /metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    logins: IntCounterVec,
    verifications: IntCounterVec,
    key_record_lookups: IntCounterVec,
    /// The series every verified request bumps, resolved once (a label
    /// lookup per request is a hash and a lock).
    verified_ok: IntCounter,
    local_hits: IntCounter,
    postgres_fallbacks: IntCounter,
    rotations: IntCounterVec,
    rate_limited: IntCounterVec,
    limit_degraded: IntCounter,
    changes_published: IntCounterVec,
    changes_unpublished: IntGauge,
    oldest_unpublished: prometheus::Gauge,
    db_pool_size: IntGauge,
    db_pool_available: IntGauge,
    db_pool_waiting: IntGauge,
    invalidation_channel_up: IntGauge,
    redis_topology: IntGaugeVec,
    redis_pool_size: IntGauge,
    redis_pool_available: IntGauge,
    redis_pool_waiting: IntGauge,
    invalidations_received: IntCounter,
    connections_refused: IntCounterVec,
    connection_errors: IntCounter,
    log_lines_dropped: IntCounter,
    service_refusals: IntCounterVec,
    credential_loads: IntCounterVec,
    credential_cache_fresh: IntGauge,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("registered once");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let metric = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("registered once");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("registered once");
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("tenant_jwt".into()), None).expect("valid prefix");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(http_duration.clone()))
            .expect("registered once");
        let verifications = counter_vec(
            &registry,
            "verifications_total",
            "Access token verifications by outcome",
            &["outcome"],
        );
        let key_record_lookups = counter_vec(
            &registry,
            "key_record_cache_lookups_total",
            "Key record lookups by result: local_hit (in process), hit, negative_hit, miss, error, circuit_open (Redis)",
            &["result"],
        );
        Self {
            service_refusals: counter_vec(
                &registry,
                "service_auth_refusals_total",
                "Service calls refused by reason: unknown_service_key, expired_credential, insufficient_scope",
                &["reason"],
            ),
            credential_loads: counter_vec(
                &registry,
                "service_credential_loads_total",
                "Stored service credentials looked up in Postgres (not cached in process), by result: found, not_found",
                &["result"],
            ),
            credential_cache_fresh: gauge(
                &registry,
                "service_credential_cache_fresh",
                "1 while this instance's cached service credentials are known current (Postgres read within the last second)",
            ),
            verified_ok: verifications.with_label_values(&["ok"]),
            local_hits: key_record_lookups.with_label_values(&["local_hit"]),
            verifications,
            key_record_lookups,
            http_requests: counter_vec(
                &registry,
                "http_requests_total",
                "HTTP requests by route, method and status",
                &["route", "method", "status"],
            ),
            http_duration,
            logins: counter_vec(
                &registry,
                "logins_total",
                "Login attempts by outcome",
                &["outcome"],
            ),
            postgres_fallbacks: counter(
                &registry,
                "key_record_postgres_loads_total",
                "Key records read from Postgres (cache miss or cache unavailable)",
            ),
            rotations: counter_vec(
                &registry,
                "secret_rotations_total",
                "User secret rotations by cause",
                &["cause"],
            ),
            rate_limited: counter_vec(
                &registry,
                "rate_limited_total",
                "Requests refused by a rate limit, by limit",
                &["limit"],
            ),
            changes_published: counter_vec(
                &registry,
                "key_record_changes_published_total",
                "Changes published from the outbox by another path than their own request: \
                 drain (left unpublished) or replay (again, after a Redis reconnection or failover)",
                &["by"],
            ),
            changes_unpublished: gauge(
                &registry,
                "key_record_changes_unpublished",
                "Committed key-record changes not yet published to Redis",
            ),
            oldest_unpublished: {
                let metric = prometheus::Gauge::new(
                    "key_record_changes_oldest_unpublished_seconds",
                    "Age of the oldest change not yet published (0 if none)",
                )
                .expect("valid metric");
                registry
                    .register(Box::new(metric.clone()))
                    .expect("registered once");
                metric
            },
            limit_degraded: counter(
                &registry,
                "rate_limit_degraded_total",
                "Limit checks this instance made alone because Redis could not be asked",
            ),
            db_pool_size: gauge(
                &registry,
                "db_pool_connections",
                "Postgres connections open",
            ),
            db_pool_available: gauge(
                &registry,
                "db_pool_available",
                "Postgres connections idle in the pool",
            ),
            db_pool_waiting: gauge(
                &registry,
                "db_pool_waiting",
                "Requests waiting for a Postgres connection",
            ),
            invalidation_channel_up: gauge(
                &registry,
                "invalidation_channel_up",
                "1 while the invalidation subscription is confirmed and the in-process cache is in use",
            ),
            redis_topology: {
                let metric = IntGaugeVec::new(
                    Opts::new("redis_topology", "1 for the Redis set-up REDIS_URL names"),
                    &["topology"],
                )
                .expect("valid metric");
                registry
                    .register(Box::new(metric.clone()))
                    .expect("registered once");
                metric
            },
            redis_pool_size: gauge(
                &registry,
                "redis_pool_connections",
                "Redis connections open",
            ),
            redis_pool_available: gauge(
                &registry,
                "redis_pool_available",
                "Redis connections idle in the pool",
            ),
            redis_pool_waiting: gauge(
                &registry,
                "redis_pool_waiting",
                "Requests waiting for a Redis connection",
            ),
            invalidations_received: counter(
                &registry,
                "invalidations_received_total",
                "Invalidation messages received on the pub/sub channel",
            ),
            connections_refused: counter_vec(
                &registry,
                "connections_refused_total",
                "Client connections closed as they were accepted, by cap",
                &["cap"],
            ),
            connection_errors: counter(
                &registry,
                "http_connection_errors_total",
                "Client connections the HTTP layer closed for a malformed or oversized head, \
                 a timeout or a broken stream (in this process)",
            ),
            log_lines_dropped: counter(
                &registry,
                "log_lines_dropped_total",
                "Log lines dropped because the log writer thread fell behind (in this process)",
            ),
            registry,
        }
    }

    pub fn connection_refused(&self, cap: &str) {
        self.connections_refused.with_label_values(&[cap]).inc();
    }

    pub fn invalidation_channel(&self, up: bool) {
        self.invalidation_channel_up.set(i64::from(up));
    }

    pub fn invalidation_channel_is_up(&self) -> bool {
        self.invalidation_channel_up.get() == 1
    }

    pub fn invalidation_received(&self) {
        self.invalidations_received.inc();
    }

    pub fn http_request(&self, route: &str, method: &str, status: &str, seconds: f64) {
        let labels = [route, method, status];
        self.http_requests.with_label_values(&labels).inc();
        self.http_duration
            .with_label_values(&labels)
            .observe(seconds);
    }

    pub fn login(&self, outcome: &str) {
        self.logins.with_label_values(&[outcome]).inc();
    }

    pub fn verification(&self, outcome: &str) {
        match outcome {
            "ok" => self.verified_ok.inc(),
            other => self.verifications.with_label_values(&[other]).inc(),
        }
    }

    pub fn key_record_lookup(&self, result: &str) {
        match result {
            "local_hit" => self.local_hits.inc(),
            other => self.key_record_lookups.with_label_values(&[other]).inc(),
        }
    }

    pub fn postgres_fallback(&self) {
        self.postgres_fallbacks.inc();
    }

    pub fn rotations(&self, cause: &str, count: u64) {
        self.rotations.with_label_values(&[cause]).inc_by(count);
    }

    pub fn changes_published(&self, by: &str, count: u64) {
        self.changes_published
            .with_label_values(&[by])
            .inc_by(count);
    }

    pub fn outbox_backlog(&self, unpublished: i64, oldest_seconds: f64) {
        self.changes_unpublished.set(unpublished);
        self.oldest_unpublished.set(oldest_seconds);
    }

    pub fn service_refused(&self, reason: &str) {
        self.service_refusals.with_label_values(&[reason]).inc();
    }

    pub fn credential_loaded(&self, found: bool) {
        let result = if found { "found" } else { "not_found" };
        self.credential_loads.with_label_values(&[result]).inc();
    }

    pub fn credential_cache_fresh(&self, fresh: bool) {
        self.credential_cache_fresh.set(i64::from(fresh));
    }

    pub fn limit_degraded(&self) {
        self.limit_degraded.inc();
    }

    pub fn rate_limited(&self, limit: &str) {
        self.rate_limited.with_label_values(&[limit]).inc();
    }

    /// The Prometheus text exposition of everything, with the pool gauges as
    /// they are now.
    pub fn render(
        &self,
        db: deadpool::Status,
        redis_topology: &str,
        redis: deadpool::Status,
    ) -> String {
        let set = |gauge: &IntGauge, n: usize| gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
        set(&self.db_pool_size, db.size);
        set(&self.db_pool_available, db.available);
        set(&self.db_pool_waiting, db.waiting);
        self.redis_topology.reset();
        self.redis_topology
            .with_label_values(&[redis_topology])
            .set(1);
        set(&self.redis_pool_size, redis.size);
        set(&self.redis_pool_available, redis.available);
        set(&self.redis_pool_waiting, redis.waiting);
        // Counted where actix logs them, and by the log writer thread,
        // process-wide (see `telemetry`).
        let catch_up = |counter: &IntCounter, seen: u64| {
            if let Some(new) = seen.checked_sub(counter.get()) {
                counter.inc_by(new);
            }
        };
        catch_up(
            &self.connection_errors,
            crate::telemetry::connection_errors(),
        );
        catch_up(
            &self.log_lines_dropped,
            crate::telemetry::dropped_log_lines(),
        );
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}
