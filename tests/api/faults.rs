//! The fault suite: the proxies between the service and Redis and Postgres
//! are cut, frozen, slowed and restored while traffic runs (token checks,
//! rotations, logins, new users). Whatever happens:
//! - no token is accepted once a rotation of its user has answered success;
//! - no valid token is refused as invalid (unavailability is a 503, not a 401);
//! - no 5xx other than the documented 503, and no request goes unanswered;
//! - the service is back within a few seconds of each restore;
//! - every write that answered success is there at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tenant_jwt::types::ids::UserId;

use crate::helpers::{PASSWORD, TcpProxy, TestApp, service_key, spawn_app_with, test_settings};

/// Users whose secrets are rotated over and over.
const USERS: usize = 4;
/// How long the service may take to answer normally again after a restore.
const RECOVERY: Duration = Duration::from_secs(5);

struct Issued {
    user: usize,
    token: String,
    /// When a rotation of the user answered success: from then on the token
    /// must never be accepted.
    revoked_at: Option<Instant>,
    /// A rotation of the user answered 503: it may or may not have happened,
    /// so a refusal of this token is no error.
    in_doubt: bool,
}

#[derive(Default)]
struct Ledger {
    issued: Mutex<Vec<Issued>>,
    /// Per user: a rotation answered 503 since the last that succeeded.
    doubtful: Mutex<[bool; USERS]>,
    created: Mutex<Vec<String>>,
    violations: Mutex<Vec<String>>,
    answers: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

impl Ledger {
    fn answered(&self, call: &'static str, status: u16) {
        *self
            .answers
            .lock()
            .unwrap()
            .entry((call, status))
            .or_default() += 1;
    }

    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }

    /// Records an answer; anything but the statuses `expected` (and 503) is
    /// a violation. Returns the status, or `None` if there was no answer.
    fn check(
        &self,
        call: &'static str,
        answer: reqwest::Result<reqwest::Response>,
        expected: &[u16],
    ) -> Option<u16> {
        let status = match answer {
            Ok(response) => response.status().as_u16(),
            Err(e) => {
                self.violation(format!("{call}: no answer: {e}"));
                return None;
            }
        };
        self.answered(call, status);
        if status != 503 && !expected.contains(&status) {
            self.violation(format!("{call}: unexpected {status}"));
        }
        Some(status)
    }

    fn issue(&self, user: usize, token: String) {
        let in_doubt = self.doubtful.lock().unwrap()[user];
        self.issued.lock().unwrap().push(Issued {
            user,
            token,
            revoked_at: None,
            in_doubt,
        });
    }

    /// A rotation of `user` is about to be sent: until it answers success,
    /// whether it happened is unknown (it may commit, then answer 503).
    fn rotating(&self, user: usize) {
        let mut issued = self.issued.lock().unwrap();
        for token in issued.iter_mut().filter(|t| t.user == user) {
            token.in_doubt = true;
        }
        self.doubtful.lock().unwrap()[user] = true;
    }

    /// The rotation answered success: every token of the user is revoked.
    fn rotated(&self, user: usize) {
        let now = Instant::now();
        let mut issued = self.issued.lock().unwrap();
        for token in issued.iter_mut().filter(|t| t.user == user) {
            token.revoked_at.get_or_insert(now);
        }
        self.doubtful.lock().unwrap()[user] = false;
    }
}

struct Traffic {
    app: Arc<TestApp>,
    ledger: Arc<Ledger>,
    users: Vec<UserId>,
    stop: Arc<AtomicBool>,
}

impl Traffic {
    async fn verify(self: Arc<Self>, start: usize) {
        let mut next = start;
        while !self.stop.load(Ordering::Relaxed) {
            let (index, token) = {
                // Every other check, one of the latest tokens (likely good).
                let issued = self.ledger.issued.lock().unwrap();
                next += 7;
                let index = if next.is_multiple_of(2) {
                    issued.len() - 1 - next / 2 % USERS
                } else {
                    next / 2 % issued.len()
                };
                (index, issued[index].token.clone())
            };
            let sent = Instant::now();
            let answer = self
                .app
                .client
                .get(self.app.url("/v1/me"))
                .bearer_auth(&token)
                .send()
                .await;
            let Some(status) = self.ledger.check("me", answer, &[200, 401]) else {
                continue;
            };
            let issued = self.ledger.issued.lock().unwrap();
            let token = &issued[index];
            match status {
                200 if token.revoked_at.is_some_and(|revoked| revoked < sent) => {
                    self.ledger.violation(format!(
                        "a token of user {} accepted {:?} after its rotation answered",
                        token.user,
                        sent - token.revoked_at.unwrap()
                    ));
                }
                401 if token.revoked_at.is_none() && !token.in_doubt => {
                    self.ledger.violation(format!(
                        "a valid token of user {} refused at {} (user id {}, token {}…)",
                        token.user,
                        chrono::Utc::now().format("%H:%M:%S%.3f"),
                        self.users[token.user],
                        &token.token[..40]
                    ));
                }
                _ => {}
            }
        }
    }

    async fn write(self: Arc<Self>) {
        let mut round = 0usize;
        while !self.stop.load(Ordering::Relaxed) {
            let user = round % USERS;
            round += 1;
            self.ledger.rotating(user);
            let answer = self
                .app
                .client
                .post(self.app.url(&format!(
                    "/v1/tenants/acme/users/{}/rotate-secret",
                    self.users[user]
                )))
                .bearer_auth(service_key())
                .send()
                .await;
            if self.ledger.check("rotate", answer, &[200]) == Some(200) {
                self.ledger.rotated(user);
            }
            let answer = self
                .app
                .client
                .post(self.app.url("/v1/tenants/acme/login"))
                .json(&json!({ "username": format!("user{user}"), "password": PASSWORD }))
                .send()
                .await;
            match answer {
                Ok(response) if response.status() == 200 => {
                    self.ledger.answered("login", 200);
                    let body: Value = response.json().await.unwrap();
                    let token = body["access_token"].as_str().unwrap().to_owned();
                    self.ledger.issue(user, token);
                }
                other => {
                    self.ledger.check("login", other, &[]);
                }
            }
            if round.is_multiple_of(4) {
                let username = format!("new{round}");
                let answer = self
                    .app
                    .client
                    .post(self.app.url("/v1/tenants/acme/users"))
                    .bearer_auth(service_key())
                    .json(&json!({ "username": username, "password": PASSWORD, "role": "member" }))
                    .send()
                    .await;
                if self.ledger.check("create_user", answer, &[201]) == Some(201) {
                    self.ledger.created.lock().unwrap().push(username);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Waits until a login and `/readyz` both succeed; panics past `RECOVERY`.
async fn recovered(app: &TestApp, after: &str) {
    let started = Instant::now();
    while started.elapsed() < RECOVERY {
        if app.readyz().await == 200 && app.login("acme", "carol", PASSWORD).await.status() == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not recovered within {RECOVERY:?} after {after}");
}

#[tokio::test]
async fn under_traffic_no_fault_lets_a_revoked_token_in_or_loses_a_write() {
    let redis = TcpProxy::to_redis().await;
    let postgres = TcpProxy::to_postgres().await;
    let mut settings = test_settings();
    settings.redis.url = redis.redis_url();
    settings.database.url = postgres.postgres_url(&settings.database.url);
    settings.database.timeout = Duration::from_secs(1);
    // Most tokens checked here are revoked ones, on purpose.
    settings.limits.failed_verifications_per_ip = u32::MAX;
    let app = Arc::new(spawn_app_with(settings).await);
    app.create_tenant("acme").await;
    app.create_user("acme", "carol", "member").await;
    let ledger = Arc::new(Ledger::default());
    let mut users = Vec::new();
    for user in 0..USERS {
        let created = app
            .create_user("acme", &format!("user{user}"), "member")
            .await;
        users.push(UserId::parse(created["id"].as_str().unwrap()).unwrap());
        ledger.issue(user, app.token("acme", &format!("user{user}")).await);
    }
    let traffic = Arc::new(Traffic {
        app: app.clone(),
        ledger: ledger.clone(),
        users,
        stop: Arc::default(),
    });
    let mut running = vec![tokio::spawn(traffic.clone().write())];
    for start in 0..2 {
        running.push(tokio::spawn(traffic.clone().verify(start)));
    }

    let hold = || tokio::time::sleep(Duration::from_millis(1500));
    hold().await;
    for (name, proxy) in [("Redis", &redis), ("Postgres", &postgres)] {
        proxy.cut();
        hold().await;
        proxy.restore();
        recovered(&app, &format!("{name} cut")).await;
        proxy.freeze();
        hold().await;
        proxy.restore();
        recovered(&app, &format!("{name} frozen")).await;
        proxy.slow(Duration::from_millis(30));
        hold().await;
        proxy.restore();
        recovered(&app, &format!("{name} slowed")).await;
    }
    app.flush_redis().await;
    hold().await;
    redis.cut();
    postgres.cut();
    hold().await;
    redis.restore();
    postgres.restore();
    recovered(&app, "both cut").await;
    hold().await;
    traffic.stop.store(true, Ordering::Relaxed);
    for task in running {
        task.await.unwrap();
    }

    let answers = ledger.answers.lock().unwrap().clone();
    eprintln!("answers (call, status) → count: {answers:?}");
    let violations = ledger.violations.lock().unwrap().clone();
    assert!(
        violations.is_empty(),
        "{} violations: {violations:#?}",
        violations.len()
    );
    for (call, status) in [
        ("me", 200),
        ("me", 401),
        ("me", 503),
        ("rotate", 200),
        ("rotate", 503),
    ] {
        assert!(
            answers.contains_key(&(call, status)),
            "no {call} answered {status}: {answers:?}"
        );
    }

    // Every user whose creation answered 201 is there.
    let created = ledger.created.lock().unwrap().clone();
    assert!(!created.is_empty());
    let listed = app.service_get("/v1/tenants/acme/users?limit=200").await;
    let listed: Vec<&str> = listed["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["username"].as_str().unwrap())
        .collect();
    for username in &created {
        assert!(listed.contains(&username.as_str()), "{username} was lost");
    }
    // And every token is now either refused (its user was rotated since) or good.
    let issued = ledger
        .issued
        .lock()
        .unwrap()
        .iter()
        .map(|t| (t.token.clone(), t.revoked_at.is_some()))
        .collect::<Vec<_>>();
    for (token, revoked) in issued {
        let status = app.me(&token).await.status();
        if revoked {
            assert_eq!(status, 401, "a revoked token, after the faults");
        }
    }
}
