//! What the Postgres pool counts, as it is at each rendering.

use prometheus::IntGauge;

use crate::metrics::{Area, Metrics, set_count};

pub struct PoolMetrics {
    size: IntGauge,
    available: IntGauge,
    waiting: IntGauge,
}

impl Area for PoolMetrics {
    fn register(metrics: &Metrics) -> Self {
        Self {
            size: metrics.gauge("db_pool_connections", "Postgres connections open"),
            available: metrics.gauge("db_pool_available", "Postgres connections idle in the pool"),
            waiting: metrics.gauge(
                "db_pool_waiting",
                "Requests waiting for a Postgres connection",
            ),
        }
    }
}

impl PoolMetrics {
    pub fn observe(&self, pool: deadpool::Status) {
        set_count(&self.size, pool.size);
        set_count(&self.available, pool.available);
        set_count(&self.waiting, pool.waiting);
    }
}
