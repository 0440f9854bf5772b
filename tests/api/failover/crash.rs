//! The primary crashes (its postmaster SIGKILLed) and the standby is
//! promoted a second later, as a failover manager would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    Traffic, assert_nothing_lost, assert_unready_then_ready, settings_on, two_instances,
    watch_readiness,
};
use crate::helpers::postgres_servers::PgPair;

/// How long the failover manager takes to notice the crash.
const DETECTION: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crashed_primary_loses_no_answered_rotation_or_logout() {
    let pair = PgPair::start().await;
    let settings = settings_on(&pair, false);
    let traffic = Traffic::prepare(Arc::new(two_instances(&settings).await), false).await;
    let readiness = watch_readiness(traffic.instances.clone(), traffic.stop.clone());
    let tasks = traffic.run();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = traffic.ledger.lock().unwrap().rotated_at.len();
    pair.kill(0);
    tokio::time::sleep(DETECTION).await;
    pair.promote(1);
    let promoted = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let ledger = traffic.stop_now(tasks).await;

    assert!(before > 0, "rotations answered before the crash");
    ledger.assert_writes_resumed(promoted, "crash failover");
    assert!(ledger.unavailable > 0, "the crash was felt (503s)");
    assert_unready_then_ready(&readiness.await.unwrap());
    assert_nothing_lost(traffic, &settings, &ledger).await;
}
