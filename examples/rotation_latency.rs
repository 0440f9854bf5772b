//! Time from a rotation answered by instance A until instance B rejects the
//! old token. `cargo run --release --example rotation_latency -- A_URL B_URL`
//! with SERVICE_KEY set; uses tenant `bench` and user `bench-rot` (password
//! `bench-password-1`), which it creates if missing. Prints p50/p99/max.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

const PASSWORD: &str = "bench-password-1";

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (a, b) = (args.next().expect("A_URL"), args.next().expect("B_URL"));
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let key = std::env::var("SERVICE_KEY").expect("SERVICE_KEY");
    let client = reqwest::Client::new();
    let _ = client
        .post(format!("{a}/v1/tenants/bench/users"))
        .bearer_auth(&key)
        .json(&json!({ "username": "bench-rot", "password": PASSWORD }))
        .send()
        .await
        .expect("create user");

    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let login: Value = client
            .post(format!("{a}/v1/tenants/bench/login"))
            .json(&json!({ "username": "bench-rot", "password": PASSWORD }))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login body");
        let token = login["access_token"]
            .as_str()
            .expect("access token")
            .to_owned();
        let me = |base: &str| {
            client
                .get(format!("{base}/v1/me"))
                .bearer_auth(&token)
                .send()
        };
        assert_eq!(
            me(&b).await.expect("me").status(),
            200,
            "B accepts the token first"
        );
        let user = me(&a)
            .await
            .expect("me")
            .json::<Value>()
            .await
            .expect("me body")["user_id"]
            .as_str()
            .expect("user id")
            .to_owned();
        let rotated = client
            .post(format!("{a}/v1/tenants/bench/users/{user}/rotate-secret"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("rotate");
        assert_eq!(rotated.status(), 200);
        let answered = Instant::now();
        loop {
            if me(&b).await.expect("me").status() == 401 {
                samples.push(answered.elapsed());
                break;
            }
            assert!(
                answered.elapsed() < Duration::from_secs(5),
                "B never rejected the old token"
            );
        }
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "rotation_to_rejection_ms p50 {:.2} p99 {:.2} max {:.2} rounds {}",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
        samples.len()
    );
}
