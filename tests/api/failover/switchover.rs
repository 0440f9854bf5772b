//! A planned switchover: the primary stopped cleanly, the standby
//! promoted, the old primary restarted as the new one's synchronous
//! standby. With `TENANT_JWT_REQUIRE_SYNC_REPLICATION`, the instances are
//! not ready while the new primary has no synchronous standby, and ready
//! again once it has; every request answered 503 succeeds when sent again
//! after its `Retry-After`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    Traffic, assert_nothing_lost, assert_unready_then_ready, settings_on, two_instances,
    watch_readiness,
};
use crate::helpers::postgres_servers::PgPair;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_switchover_needs_nothing_but_retries_and_loses_nothing() {
    let pair = PgPair::start().await;
    let settings = settings_on(&pair, true);
    let traffic = Traffic::prepare(Arc::new(two_instances(&settings).await), true).await;
    let readiness = watch_readiness(traffic.instances.clone(), traffic.stop.clone());
    let tasks = traffic.run();

    tokio::time::sleep(Duration::from_secs(2)).await;
    pair.stop(0);
    pair.promote(1);
    let promoted = Instant::now();
    pair.follow(0, 1);
    pair.require_sync_standby(1).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ledger = traffic.stop_now(tasks).await;

    // Every 503 was sent again after its Retry-After and succeeded (`step`).
    ledger.assert_writes_resumed(promoted, "switchover");
    // Not ready: no primary, then a primary with no synchronous standby.
    assert_unready_then_ready(&readiness.await.unwrap());
    assert_nothing_lost(traffic, &settings, &ledger).await;
}
