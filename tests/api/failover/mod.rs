//! Postgres fails over under traffic: a primary and a synchronous standby of
//! the test's own (`helpers::postgres_servers`), two instances of the real
//! binary on the multi-host URL, and users logging in, verifying, having
//! their secrets rotated and logging out throughout. What must hold: no 500
//! and no hung request, 503 with `Retry-After` while no primary answers,
//! writes again soon after the promotion, and every rotation or logout that
//! was answered still in effect afterwards, on every instance and in
//! Postgres itself (a fresh instance with Redis emptied refuses the tokens),
//! and its webhook delivered.

mod crash;
mod switchover;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tenant_jwt::config::Settings;

use crate::helpers::binary::Running;
use crate::helpers::postgres_servers::PgPair;
use crate::helpers::{PASSWORD, service_key, test_settings};
use crate::webhooks::receiver::Receiver;

/// How long one use of Postgres may take (`TENANT_JWT_DB_TIMEOUT`): no
/// request may take much longer.
const DB_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest any one request may take, Postgres down or not.
const LONGEST_REQUEST: Duration = Duration::from_secs(5);
const USERS: usize = 6;
const TENANT: &str = "acme";

/// Settings for instances on `pair`'s multi-host URL.
fn settings_on(pair: &PgPair, require_sync: bool) -> Settings {
    let mut settings = test_settings();
    let database = settings.database.url.database().to_owned();
    settings.database.url = pair.url(&database);
    settings.database.timeout = DB_TIMEOUT;
    settings.database.require_sync_replication = require_sync;
    settings
}

/// Two instances of the binary, ready.
async fn two_instances(settings: &Settings) -> [Running; 2] {
    let instances = [Running::start(settings), Running::start(settings)];
    for instance in &instances {
        assert!(instance.readyz_answers(200).await, "instance ready");
    }
    instances
}

/// What one request answered.
struct Answer {
    status: u16,
    body: Value,
}

/// Sends `request`, asserting what must hold of every answer: no 5xx but
/// 503, a 503 says when to retry, and no answer takes longer than
/// `LONGEST_REQUEST`.
async fn send(request: reqwest::RequestBuilder, what: &str) -> Answer {
    let started = Instant::now();
    let response = request
        .timeout(LONGEST_REQUEST * 3)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    let took = started.elapsed();
    let status = response.status().as_u16();
    assert!(took < LONGEST_REQUEST, "{what} took {took:?} ({status})");
    assert!(
        status < 500 || status == 503,
        "{what} answered {status}: {}",
        response.text().await.unwrap_or_default()
    );
    if status == 503 {
        assert!(
            response.headers().contains_key("retry-after"),
            "{what}: a 503 says when to retry"
        );
    }
    let body = response.json().await.unwrap_or(Value::Null);
    Answer { status, body }
}

/// The changes traffic made that answered success: each token here must be
/// refused from then on.
#[derive(Default)]
struct Ledger {
    /// Access tokens whose user's secret was rotated, or that logged out.
    revoked: Vec<String>,
    /// When each rotation answered 200.
    rotated_at: Vec<Instant>,
    /// The request id of each rotation answered 200: its webhook must arrive.
    rotation_requests: Vec<String>,
    /// Requests answered 503.
    unavailable: usize,
    /// Requests answered.
    answered: usize,
}

/// Users logging in, verifying on the other instance, having their secret
/// rotated and logging out, over and over, until `stop`. With `retry`, a
/// step answered 503 is sent again after its `Retry-After` until it
/// succeeds (a planned switchover must need no more).
struct Traffic {
    instances: Arc<[Running; 2]>,
    /// Subscribed to `user.secret_rotated`.
    receiver: Receiver,
    users: Vec<String>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    retry: bool,
}

impl Traffic {
    /// Creates the tenant, its users and a webhook endpoint through the
    /// first instance.
    async fn prepare(instances: Arc<[Running; 2]>, retry: bool) -> Self {
        let a = &instances[0];
        let created = send(
            a.client
                .post(a.url("/v1/tenants"))
                .bearer_auth(service_key())
                .json(&json!({ "slug": TENANT, "name": "Acme" })),
            "create tenant",
        )
        .await;
        assert_eq!(created.status, 201);
        let mut users = Vec::new();
        for i in 0..USERS {
            let name = format!("user{i}");
            let user = send(
                a.client
                    .post(a.url(&format!("/v1/tenants/{TENANT}/users")))
                    .bearer_auth(service_key())
                    .json(&json!({ "username": name, "password": PASSWORD, "role": "member" })),
                "create user",
            )
            .await;
            assert_eq!(user.status, 201);
            users.push(user.body["id"].as_str().unwrap().to_owned());
        }
        let receiver = Receiver::start(200);
        let endpoint = send(
            a.client
                .post(a.url(&format!("/v1/tenants/{TENANT}/webhooks")))
                .bearer_auth(service_key())
                .json(&json!({ "url": receiver.url, "events": ["user.secret_rotated"] })),
            "add webhook endpoint",
        )
        .await;
        assert_eq!(endpoint.status, 201, "{}", endpoint.body);
        Traffic {
            instances,
            receiver,
            users,
            ledger: Arc::default(),
            stop: Arc::default(),
            retry,
        }
    }

    /// One task per user, running until `stop_now`.
    fn run(&self) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.users.len())
            .map(|i| {
                let instances = self.instances.clone();
                let ledger = self.ledger.clone();
                let stop = self.stop.clone();
                let (id, retry) = (self.users[i].clone(), self.retry);
                tokio::spawn(async move {
                    let mut round = i;
                    while !stop.load(Ordering::Relaxed) {
                        let x = &instances[round % 2];
                        let y = &instances[(round + 1) % 2];
                        one_round(x, y, i, &id, &ledger, retry).await;
                        round += 1;
                    }
                })
            })
            .collect()
    }

    async fn stop_now(&self, tasks: Vec<tokio::task::JoinHandle<()>>) -> Ledger {
        self.stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.expect("a traffic task failed");
        }
        std::mem::take(&mut self.ledger.lock().unwrap())
    }
}

/// Login on `x`, verification on `y`, rotation on `y`, then a second login
/// on `x` logged out on `y`.
async fn one_round(
    x: &Running,
    y: &Running,
    user: usize,
    id: &str,
    ledger: &Mutex<Ledger>,
    retry: bool,
) {
    let login = || {
        x.client
            .post(x.url(&format!("/v1/tenants/{TENANT}/login")))
            .json(&json!({ "username": format!("user{user}"), "password": PASSWORD }))
    };
    let Some(first) = step(login(), "login", 200, ledger, retry).await else {
        return;
    };
    let token = first["access_token"].as_str().unwrap().to_owned();
    let me = y.client.get(y.url("/v1/me")).bearer_auth(&token);
    step(me, "verification", 200, ledger, retry).await;
    let request_id = uuid::Uuid::new_v4().to_string();
    let rotate = y
        .client
        .post(y.url(&format!("/v1/tenants/{TENANT}/users/{id}/rotate-secret")))
        .bearer_auth(service_key())
        .header("x-request-id", &request_id);
    if step(rotate, "rotation", 200, ledger, retry).await.is_some() {
        let mut ledger = ledger.lock().unwrap();
        ledger.revoked.push(token);
        ledger.rotated_at.push(Instant::now());
        ledger.rotation_requests.push(request_id);
    }
    let Some(second) = step(login(), "login", 200, ledger, retry).await else {
        return;
    };
    let token = second["access_token"].as_str().unwrap().to_owned();
    let logout = y.client.post(y.url("/v1/logout")).bearer_auth(&token);
    if step(logout, "logout", 204, ledger, retry).await.is_some() {
        ledger.lock().unwrap().revoked.push(token);
    }
}

/// Sends `request` (again after 503s, with `retry`); its body if it answered
/// `expected`, `None` if 503. Anything else fails the test.
async fn step(
    request: reqwest::RequestBuilder,
    what: &str,
    expected: u16,
    ledger: &Mutex<Ledger>,
    retry: bool,
) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = send(request.try_clone().unwrap(), what).await;
        {
            let mut ledger = ledger.lock().unwrap();
            ledger.answered += 1;
            ledger.unavailable += usize::from(answer.status == 503);
        }
        match answer.status {
            status if status == expected => return Some(answer.body),
            503 if !retry => return None,
            503 if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            status => panic!("{what} answered {status}: {}", answer.body),
        }
    }
}

/// `/readyz` of each instance every 100 ms until `stop`: the statuses seen,
/// in order, without repeats.
fn watch_readiness(
    instances: Arc<[Running; 2]>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<[Vec<u16>; 2]> {
    tokio::spawn(async move {
        let mut seen: [Vec<u16>; 2] = Default::default();
        while !stop.load(Ordering::Relaxed) {
            for (instance, seen) in instances.iter().zip(&mut seen) {
                let status = send(instance.client.get(instance.url("/readyz")), "/readyz")
                    .await
                    .status;
                if seen.last() != Some(&status) {
                    seen.push(status);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen
    })
}

/// Every revoked token is refused by each instance, and by a fresh instance
/// with Redis emptied of this deployment's keys: Postgres holds the
/// revocation, not a cache.
async fn assert_all_refused(instances: &[Running], settings: &Settings, revoked: &[String]) {
    empty_redis(&settings.redis.key_prefix).await;
    let fresh = Running::start(settings);
    assert!(fresh.readyz_answers(200).await, "a fresh instance starts");
    for instance in instances.iter().chain([&fresh]) {
        for token in revoked {
            let me = instance
                .client
                .get(instance.url("/v1/me"))
                .bearer_auth(token);
            let status = me.send().await.unwrap().status();
            assert_eq!(status, 401, "a revoked token is refused");
        }
    }
}

/// After the failover, a rotation on one instance still stops the user's
/// token on the other within a second (the announcement and the outbox
/// drain work on the new primary).
async fn assert_rotation_propagates(traffic: &Traffic) {
    let [a, b] = &*traffic.instances;
    let login = a
        .client
        .post(a.url(&format!("/v1/tenants/{TENANT}/login")))
        .json(&json!({ "username": "user0", "password": PASSWORD }));
    let token = send(login, "login").await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = || b.client.get(b.url("/v1/me")).bearer_auth(&token);
    assert_eq!(send(me(), "verification").await.status, 200);
    let rotate = a
        .client
        .post(a.url(&format!(
            "/v1/tenants/{TENANT}/users/{}/rotate-secret",
            traffic.users[0]
        )))
        .bearer_auth(service_key());
    assert_eq!(send(rotate, "rotation").await.status, 200);
    let answered = Instant::now();
    while send(me(), "verification").await.status != 401 {
        assert!(
            answered.elapsed() < Duration::from_secs(1),
            "the rotation reaches the other instance within a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every rotation answered 200 has its `user.secret_rotated` webhook
/// delivered (written with the change, so kept by the failover; sent by
/// whichever instance leases it). Returns how many arrived more than once
/// (at least once is the contract).
async fn assert_every_rotation_reported(receiver: &Receiver, requests: &[String]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let received = receiver.received();
        let ids: HashSet<String> = received.iter().map(|r| r.id.clone()).collect();
        let reported: HashSet<String> = received
            .iter()
            .filter_map(|r| Some(r.json()["data"]["request_id"].as_str()?.to_owned()))
            .collect();
        let missing = requests.iter().filter(|r| !reported.contains(*r)).count();
        if missing == 0 {
            return received.len() - ids.len();
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} answered rotations never reported",
            requests.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn empty_redis(prefix: &str) {
    use redis::AsyncCommands;
    let client = redis::Client::open(crate::helpers::redis_url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis.keys(format!("{prefix}*")).await.unwrap();
    if !keys.is_empty() {
        let _: () = redis.del(keys).await.unwrap();
    }
}

impl Ledger {
    /// How long after `promoted` the first rotation answered 200 (at most
    /// 5 s), printed with the counts.
    fn assert_writes_resumed(&self, promoted: Instant, what: &str) {
        let first = self
            .rotated_at
            .iter()
            .filter(|at| **at > promoted)
            .min()
            .map(|at| at.duration_since(promoted))
            .expect("rotations answered after the promotion");
        eprintln!(
            "{what}: first rotation {first:?} after the promotion; {} requests, \
             {} answered 503, {} revocations checked",
            self.answered,
            self.unavailable,
            self.revoked.len()
        );
        assert!(
            first <= Duration::from_secs(5),
            "first rotation {first:?} after the promotion"
        );
    }
}

/// Each instance's `/readyz` went from 503 back to 200, and ended ready.
fn assert_unready_then_ready(readiness: &[Vec<u16>; 2]) {
    for seen in readiness {
        assert!(
            seen.windows(2).any(|w| w == [503, 200]) && seen.last() == Some(&200),
            "/readyz went 503 then 200: {seen:?}"
        );
    }
}

/// What must hold once the traffic has stopped: rotations propagate, every
/// answered revocation holds everywhere, every answered rotation was
/// reported, and both instances ran throughout.
async fn assert_nothing_lost(traffic: Traffic, settings: &Settings, ledger: &Ledger) {
    assert_rotation_propagates(&traffic).await;
    assert_all_refused(&traffic.instances[..], settings, &ledger.revoked).await;
    let repeated =
        assert_every_rotation_reported(&traffic.receiver, &ledger.rotation_requests).await;
    eprintln!("{repeated} webhooks delivered twice");
    assert_still_running(traffic.instances);
}

/// Neither instance restarted or died.
fn assert_still_running(instances: Arc<[Running; 2]>) {
    let Ok(mut instances) = Arc::try_unwrap(instances) else {
        panic!("the traffic has stopped");
    };
    for instance in &mut instances {
        assert!(
            instance.child.try_wait().unwrap().is_none(),
            "the instance kept running"
        );
    }
}
