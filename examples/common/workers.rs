//! What the load examples share: gathering their workers' latencies and
//! failures, and the line they print.

use std::time::{Duration, Instant};

/// Awaits every worker (each returning its latencies and failures) and
/// prints `requests_per_second p50_ms p99_ms non_2xx`, the rate over the
/// time since `started`.
pub async fn report(
    workers: Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>>,
    started: Instant,
) {
    let (mut latencies, mut failed): (Vec<Duration>, usize) = (Vec::new(), 0);
    for worker in workers {
        let (l, f) = worker.await.expect("worker");
        latencies.extend(l);
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| {
        latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1e3
    };
    println!(
        "{:.2} {:.2} {:.2} {}",
        latencies.len() as f64 / elapsed,
        at(0.5),
        at(0.99),
        failed
    );
}
