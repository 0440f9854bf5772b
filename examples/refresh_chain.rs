//! Refresh throughput: `CONCURRENCY` sessions of one user (each logged in
//! once), each exchanging its refresh token for the next for `SECONDS`, so
//! every refresh token is spent exactly once, as clients do.
//! `cargo run --release --example refresh_chain -- BASE_URL TENANT USERNAME PASSWORD [SECONDS] [CONCURRENCY]`
//! Prints `requests_per_second p50_ms p99_ms non_2xx`.

#[path = "common/workers.rs"]
mod workers;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let base = args.next().expect("BASE_URL");
    let tenant = args.next().expect("TENANT");
    let username = args.next().expect("USERNAME");
    let password = args.next().expect("PASSWORD");
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(6);
    let concurrency: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(16);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let login = format!("{base}/v1/tenants/{tenant}/login");
    let mut first = Vec::new();
    for _ in 0..concurrency {
        let answer: Value = client
            .post(&login)
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login answer");
        first.push(
            answer["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
        );
    }
    let url = format!("{base}/v1/token/refresh");
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = first
        .into_iter()
        .map(|mut token| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let (mut latencies, mut failed) = (Vec::new(), 0usize);
                while Instant::now() < until {
                    let sent = Instant::now();
                    let answer = client
                        .post(&url)
                        .json(&json!({ "refresh_token": token }))
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status().is_success());
                    let next = match answer {
                        Some(response) => response.json::<Value>().await.ok(),
                        None => None,
                    };
                    latencies.push(sent.elapsed());
                    match next.as_ref().and_then(|v| v["refresh_token"].as_str()) {
                        Some(next) => token = next.to_owned(),
                        None => {
                            // The chain is broken: nothing left to spend.
                            failed += 1;
                            break;
                        }
                    }
                }
                (latencies, failed)
            })
        })
        .collect();
    workers::report(workers, started).await;
}
