//! What tokens count: verifications, key-record lookups by level, secret
//! rotations, and the outbox's propagation of changed records.

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge};

use crate::metrics::{Area, Metrics};

pub struct TokenMetrics {
    verifications: IntCounterVec,
    /// The series every verified request bumps, resolved once (a label
    /// lookup per request is a hash and a lock).
    verified_ok: IntCounter,
    key_record_lookups: IntCounterVec,
    local_hits: IntCounter,
    postgres_fallbacks: IntCounter,
    rotations: IntCounterVec,
    changes_published: IntCounterVec,
    changes_unpublished: IntGauge,
    oldest_unpublished: Gauge,
}

impl Area for TokenMetrics {
    fn register(metrics: &Metrics) -> Self {
        let verifications = metrics.counter_vec(
            "verifications_total",
            "Access token verifications by outcome",
            &["outcome"],
        );
        let key_record_lookups = metrics.counter_vec(
            "key_record_cache_lookups_total",
            "Key record lookups by result: local_hit (in process), hit, negative_hit, miss, error, circuit_open (Redis)",
            &["result"],
        );
        Self {
            verified_ok: verifications.with_label_values(&["ok"]),
            local_hits: key_record_lookups.with_label_values(&["local_hit"]),
            verifications,
            key_record_lookups,
            postgres_fallbacks: metrics.counter(
                "key_record_postgres_loads_total",
                "Key records read from Postgres (cache miss or cache unavailable)",
            ),
            rotations: metrics.counter_vec(
                "secret_rotations_total",
                "User secret rotations by cause",
                &["cause"],
            ),
            changes_published: metrics.counter_vec(
                "key_record_changes_published_total",
                "Changes published from the outbox by another path than their own request: \
                 drain (left unpublished) or replay (again, after a Redis reconnection or failover)",
                &["by"],
            ),
            changes_unpublished: metrics.gauge(
                "key_record_changes_unpublished",
                "Committed key-record changes not yet published to Redis",
            ),
            oldest_unpublished: metrics.float_gauge(
                "key_record_changes_oldest_unpublished_seconds",
                "Age of the oldest change not yet published (0 if none)",
            ),
        }
    }
}

impl TokenMetrics {
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
}
