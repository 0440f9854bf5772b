//! A planned switchover: the primary stopped cleanly, the standby
//! promoted, the old primary restarted as the new one's synchronous
//! standby. With `TENANT_JWT_REQUIRE_SYNC_REPLICATION`, the instances are
//! not ready while the new primary has no synchronous standby, and ready
//! again once it has; every request answered 503 succeeds when sent again
//! after its `Retry-After`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    Traffic, assert_all_refused, assert_every_rotation_reported, assert_rotation_propagates,
    assert_still_running, settings_on, two_instances, watch_readiness,
};
use crate::helpers::postgres_servers::PgPair;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_switchover_needs_nothing_but_retries_and_loses_nothing() {
    let pair = PgPair::start().await;
    let settings = settings_on(&pair, true);
    let instances = Arc::new(two_instances(&settings).await);
    let traffic = Traffic::prepare(instances.clone(), true).await;
    let readiness = watch_readiness(instances.clone(), traffic.stop.clone());
    let tasks = traffic.run();

    tokio::time::sleep(Duration::from_secs(2)).await;
    pair.stop(0);
    pair.promote(1);
    let promoted = Instant::now();
    pair.follow(0, 1);
    pair.require_sync_standby(1).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ledger = traffic.stop_now(tasks).await;
    let readiness = readiness.await.unwrap();

    let first_after = ledger
        .rotated_at
        .iter()
        .filter(|at| **at > promoted)
        .min()
        .map(|at| at.duration_since(promoted))
        .expect("rotations answered after the promotion");
    eprintln!(
        "switchover: first rotation {first_after:?} after the promotion; \
         {} requests, {} answered 503 (each then retried to success), {} revocations checked",
        ledger.answered,
        ledger.unavailable,
        ledger.revoked.len()
    );
    assert!(
        first_after <= Duration::from_secs(5),
        "first rotation {first_after:?} after the promotion"
    );
    for seen in &readiness {
        assert!(
            seen.windows(2).any(|w| w == [503, 200]) && seen.last() == Some(&200),
            "/readyz went 503 (no primary, then no synchronous standby) then 200: {seen:?}"
        );
    }
    assert_rotation_propagates(&traffic).await;
    assert_all_refused(&instances[..], &settings, &ledger.revoked).await;
    let repeated =
        assert_every_rotation_reported(&traffic.receiver, &ledger.rotation_requests).await;
    eprintln!("{} webhooks delivered twice", repeated);
    drop(traffic);
    assert_still_running(instances);
}
