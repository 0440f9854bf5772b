//! Time from a change's answer until its webhook reaches a receiver.
//! `cargo run --release --example webhook_latency -- A_URL [ROUNDS]` with
//! SERVICE_KEY set; the instance must allow loopback endpoints
//! (`TENANT_JWT_WEBHOOK_ALLOW_PRIVATE=true`). It starts its own receiver on
//! 127.0.0.1, makes a tenant with one endpoint (for `role.updated`) and one
//! role, and changes the role ROUNDS times (default 200), one at a time, a random 0–300 ms apart
//! (so changes fall anywhere in the instances' polling), timing each answer
//! to its message's arrival. Prints p50/p95/p99/max in ms.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;

type Arrivals = Arc<Mutex<Vec<Instant>>>;

async fn receive(arrivals: web::Data<Mutex<Vec<Instant>>>) -> HttpResponse {
    arrivals.lock().unwrap().push(Instant::now());
    HttpResponse::NoContent().finish()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let a = args.next().expect("A_URL");
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let key = std::env::var("SERVICE_KEY").expect("SERVICE_KEY");

    let arrivals: Arrivals = Arc::default();
    let data = web::Data::from(arrivals.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(receive))
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .expect("bind the receiver");
    let receiver = format!("http://127.0.0.1:{}/hook", server.addrs()[0].port());
    tokio::spawn(server.run());

    let client = reqwest::Client::new();
    let tenant = format!("wh-{}", std::process::id());
    let post = |path: String, body: serde_json::Value| {
        client
            .post(format!("{a}{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let ok = |r: reqwest::Response| assert!(r.status().is_success(), "{}", r.status());
    ok(post(
        "/v1/tenants".into(),
        json!({ "slug": tenant, "name": "webhook latency" }),
    )
    .await
    .expect("tenant"));
    ok(post(
        format!("/v1/tenants/{tenant}/webhooks"),
        json!({ "url": receiver, "events": ["role.updated"] }),
    )
    .await
    .expect("endpoint"));
    ok(post(
        format!("/v1/tenants/{tenant}/roles"),
        json!({ "name": "timed", "permissions": ["reports:read"] }),
    )
    .await
    .expect("role"));

    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..300))).await;
        let description = format!("round {round}");
        let answer = client
            .patch(format!("{a}/v1/tenants/{tenant}/roles/timed"))
            .bearer_auth(&key)
            .json(&json!({ "description": description }))
            .send()
            .await
            .expect("change");
        let answered = Instant::now();
        ok(answer);
        // One change at a time: its message is the next to arrive.
        let arrived = loop {
            let found = arrivals.lock().unwrap().get(round).copied();
            if let Some(at) = found {
                break at;
            }
            assert!(
                answered.elapsed() < Duration::from_secs(30),
                "round {round} never arrived"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        samples.push(arrived.saturating_duration_since(answered));
    }
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "webhook delivery, {rounds} changes: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(at(0.50)),
        ms(at(0.95)),
        ms(at(0.99)),
        ms(*samples.last().unwrap())
    );
}
