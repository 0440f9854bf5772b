//! What the Redis level counts: the invalidation subscription, the
//! topology and the pool.

use prometheus::{IntCounter, IntGauge, IntGaugeVec};

use crate::metrics::{Area, Metrics, set_count};

pub struct CacheMetrics {
    channel_up: IntGauge,
    invalidations_received: IntCounter,
    topology: IntGaugeVec,
    pool_size: IntGauge,
    pool_available: IntGauge,
    pool_waiting: IntGauge,
}

impl Area for CacheMetrics {
    fn register(metrics: &Metrics) -> Self {
        Self {
            channel_up: metrics.gauge(
                "invalidation_channel_up",
                "1 while the invalidation subscription is confirmed and the in-process cache is in use",
            ),
            invalidations_received: metrics.counter(
                "invalidations_received_total",
                "Invalidation messages received on the pub/sub channel",
            ),
            topology: metrics.gauge_vec(
                "redis_topology",
                "1 for the Redis set-up REDIS_URL names",
                &["topology"],
            ),
            pool_size: metrics.gauge("redis_pool_connections", "Redis connections open"),
            pool_available: metrics.gauge("redis_pool_available", "Redis connections idle in the pool"),
            pool_waiting: metrics.gauge(
                "redis_pool_waiting",
                "Requests waiting for a Redis connection",
            ),
        }
    }
}

impl CacheMetrics {
    pub fn invalidation_channel(&self, up: bool) {
        self.channel_up.set(i64::from(up));
    }

    pub fn invalidation_channel_is_up(&self) -> bool {
        self.channel_up.get() == 1
    }

    pub fn invalidation_received(&self) {
        self.invalidations_received.inc();
    }

    /// The topology and the pool as they are now (before a rendering).
    pub fn observe(&self, topology: &str, pool: deadpool::Status) {
        self.topology.reset();
        self.topology.with_label_values(&[topology]).set(1);
        set_count(&self.pool_size, pool.size);
        set_count(&self.pool_available, pool.available);
        set_count(&self.pool_waiting, pool.waiting);
    }
}
