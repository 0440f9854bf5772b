//! The primary crashes (its postmaster SIGKILLed) and the standby is
//! promoted a second later, as a failover manager would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    Traffic, assert_all_refused, assert_every_rotation_reported, assert_rotation_propagates,
    assert_still_running, settings_on, two_instances, watch_readiness,
};
use crate::helpers::postgres_servers::PgPair;

/// How long the failover manager takes to notice the crash.
const DETECTION: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crashed_primary_loses_no_answered_rotation_or_logout() {
    let pair = PgPair::start().await;
    let settings = settings_on(&pair, false);
    let instances = Arc::new(two_instances(&settings).await);
    let traffic = Traffic::prepare(instances.clone(), false).await;
    let readiness = watch_readiness(instances.clone(), traffic.stop.clone());
    let tasks = traffic.run();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = traffic.ledger.lock().unwrap().rotated_at.len();
    pair.kill(0);
    tokio::time::sleep(DETECTION).await;
    pair.promote(1);
    let promoted = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let ledger = traffic.stop_now(tasks).await;
    let readiness = readiness.await.unwrap();

    assert!(before > 0, "rotations answered before the crash");
    let first_after = ledger
        .rotated_at
        .iter()
        .filter(|at| **at > promoted)
        .min()
        .map(|at| at.duration_since(promoted))
        .expect("rotations answered after the promotion");
    eprintln!(
        "crash failover: first rotation {first_after:?} after the promotion; \
         {} requests, {} answered 503, {} revocations checked",
        ledger.answered,
        ledger.unavailable,
        ledger.revoked.len()
    );
    assert!(
        first_after <= Duration::from_secs(5),
        "first rotation {first_after:?} after the promotion"
    );
    assert!(ledger.unavailable > 0, "the crash was felt (503s)");
    for seen in &readiness {
        assert!(
            seen.windows(2).any(|w| w == [503, 200]) && seen.last() == Some(&200),
            "/readyz went 503 then 200: {seen:?}"
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
