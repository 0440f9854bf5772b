//! One `GET /v1/me` per token in a file (one per line), `CONCURRENCY` at a
//! time, each token once: a pass over many users, for the cold- and
//! warm-cache benchmarks (wrk cannot stop after a fixed number of requests).
//! `cargo run --release --example user_pass -- BASE_URL TOKENS_FILE [CONCURRENCY]`
//! Prints `requests_per_second p50_ms p99_ms non_2xx`.

#[path = "common/workers.rs"]
mod workers;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let base = args.next().expect("BASE_URL");
    let tokens: Arc<Vec<String>> = Arc::new(
        std::fs::read_to_string(args.next().expect("TOKENS_FILE"))
            .expect("tokens file")
            .lines()
            .map(str::to_owned)
            .collect(),
    );
    let concurrency: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(32);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let url = Arc::new(format!("{base}/v1/me"));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, tokens, next) =
                (client.clone(), url.clone(), tokens.clone(), next.clone());
            tokio::spawn(async move {
                let (mut latencies, mut failed) = (Vec::new(), 0usize);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(token) = tokens.get(i) else { break };
                    let sent = Instant::now();
                    let ok = client
                        .get(url.as_str())
                        .bearer_auth(token)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    latencies.push(sent.elapsed());
                    failed += usize::from(!ok);
                }
                (latencies, failed)
            })
        })
        .collect();
    workers::report(workers, started).await;
}
