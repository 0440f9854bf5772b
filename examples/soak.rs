//! Mixed traffic against a running instance for a while, reporting errors and
//! the server's memory over time; `benches/soak` starts the service and runs
//! this. Each worker owns some users and cycles through them: token checks,
//! an introspection, a refresh, and every tenth round a rotation (after which the
//! old token must be refused at once) and a new login. Every answer is known
//! in advance, so anything else is an error.
//!
//! `cargo run --release --example soak -- BASE_URL SERVICE_KEY SERVER_PID SECONDS USERS [WORKERS]`
//! (users `soak0`.. `soak{USERS-1}` of tenant `soak`, password `soak-password-1`,
//! must exist). Prints one line per 10 s, then a summary; exits 1 on any error.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const PASSWORD: &str = "soak-password-1";
const REPORT_EVERY: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Window {
    requests: BTreeMap<&'static str, u64>,
    errors: Vec<String>,
    me_latencies_us: Vec<u64>,
}

struct Soak {
    client: reqwest::Client,
    base: String,
    service_key: String,
    window: Mutex<Window>,
    deadline: Instant,
}

struct User {
    name: String,
    id: String,
    access: String,
    refresh: String,
}

impl Soak {
    fn count(&self, call: &'static str) {
        *self
            .window
            .lock()
            .unwrap()
            .requests
            .entry(call)
            .or_default() += 1;
    }

    fn error(&self, what: String) {
        self.window.lock().unwrap().errors.push(what);
    }

    /// Sends, counts, and checks the status; the body if it was `expected`.
    async fn call(
        &self,
        call: &'static str,
        request: reqwest::RequestBuilder,
        expected: u16,
    ) -> Option<Value> {
        let sent = Instant::now();
        let answer = request.send().await;
        if call == "me" {
            let micros = sent.elapsed().as_micros() as u64;
            self.window.lock().unwrap().me_latencies_us.push(micros);
        }
        self.count(call);
        match answer {
            Ok(response) if response.status().as_u16() == expected => {
                Some(response.json().await.unwrap_or(Value::Null))
            }
            Ok(response) => {
                self.error(format!(
                    "{call}: {} (expected {expected})",
                    response.status()
                ));
                None
            }
            Err(e) => {
                self.error(format!("{call}: no answer: {e}"));
                None
            }
        }
    }

    async fn login(&self, name: &str) -> Option<(String, String)> {
        let body = self
            .call(
                "login",
                self.client
                    .post(format!("{}/v1/tenants/soak/login", self.base))
                    .json(&json!({ "username": name, "password": PASSWORD })),
                200,
            )
            .await?;
        Some(tokens(&body))
    }

    async fn me(&self, token: &str, expected: u16) -> Option<Value> {
        self.call(
            "me",
            self.client
                .get(format!("{}/v1/me", self.base))
                .bearer_auth(token),
            expected,
        )
        .await
    }

    async fn cycle(&self, user: &mut User, round: u64) {
        for _ in 0..40 {
            self.me(&user.access, 200).await;
        }
        let introspected = self
            .call(
                "introspect",
                self.client
                    .post(format!("{}/v1/introspect", self.base))
                    .bearer_auth(&self.service_key)
                    .form(&[("token", user.access.as_str())]),
                200,
            )
            .await;
        if introspected.is_some_and(|body| body["active"] != true) {
            self.error("introspect: a current token is not active".into());
        }
        if let Some(body) = self
            .call(
                "refresh",
                self.client
                    .post(format!("{}/v1/token/refresh", self.base))
                    .json(&json!({ "refresh_token": user.refresh })),
                200,
            )
            .await
        {
            (user.access, user.refresh) = tokens(&body);
        }
        if round.is_multiple_of(10) {
            let rotated = self
                .call(
                    "rotate",
                    self.client
                        .post(format!(
                            "{}/v1/tenants/soak/users/{}/rotate-secret",
                            self.base, user.id
                        ))
                        .bearer_auth(&self.service_key),
                    200,
                )
                .await;
            if rotated.is_some() {
                // Revoked at once, on this very instance.
                self.me(&user.access, 401).await;
                if let Some((access, refresh)) = self.login(&user.name).await {
                    (user.access, user.refresh) = (access, refresh);
                }
            }
        }
    }

    async fn work(self: Arc<Self>, mut users: Vec<User>) {
        let mut round = 0u64;
        while Instant::now() < self.deadline {
            round += 1;
            for user in &mut users {
                self.cycle(user, round).await;
            }
        }
    }
}

fn tokens(body: &Value) -> (String, String) {
    let field = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
    (field("access_token"), field("refresh_token"))
}

/// The server's resident memory (MiB) and open file descriptors.
fn server_footprint(pid: u32) -> (u64, usize) {
    let rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count());
    (rss_kib / 1024, fds)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, service_key, pid, seconds, users, rest @ ..] = args.as_slice() else {
        panic!("usage: soak BASE_URL SERVICE_KEY SERVER_PID SECONDS USERS [WORKERS]");
    };
    let pid: u32 = pid.parse().expect("SERVER_PID");
    let users: usize = users.parse().expect("USERS");
    let workers: usize = rest.first().map_or(8, |w| w.parse().expect("WORKERS"));
    let started = Instant::now();
    let soak = Arc::new(Soak {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(workers)
            .build()
            .expect("client"),
        base: base.clone(),
        service_key: service_key.clone(),
        window: Mutex::default(),
        deadline: started + Duration::from_secs(seconds.parse().expect("SECONDS")),
    });

    let mut owned: Vec<Vec<User>> = (0..workers).map(|_| Vec::new()).collect();
    for n in 0..users {
        let name = format!("soak{n}");
        let (access, refresh) = soak.login(&name).await.expect("seeded user logs in");
        let me = soak.me(&access, 200).await.expect("a fresh token verifies");
        let id = me["user_id"].as_str().expect("user_id").to_owned();
        owned[n % workers].push(User {
            name,
            id,
            access,
            refresh,
        });
    }
    let running: Vec<_> = owned
        .into_iter()
        .map(|users| tokio::spawn(soak.clone().work(users)))
        .collect();

    println!(
        "{:>6} {:>9} {:>8} {:>8} {:>7} {:>7} {:>7} {:>10} {:>8}",
        "t s", "me/s", "p99 ms", "login/s", "refr/s", "rot/s", "errors", "rss MiB", "fds"
    );
    let (mut total_errors, mut first_errors) = (0usize, Vec::new());
    let mut rss_series = Vec::new();
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + REPORT_EVERY, REPORT_EVERY);
    loop {
        let done = running.iter().all(|task| task.is_finished());
        if !done {
            ticks.tick().await;
        }
        let mut window = std::mem::take(&mut *soak.window.lock().unwrap());
        if done && window.requests.is_empty() {
            break;
        }
        window.me_latencies_us.sort_unstable();
        let per_second = |call: &str| {
            window.requests.get(call).copied().unwrap_or(0) as f64 / REPORT_EVERY.as_secs_f64()
        };
        let (rss, fds) = server_footprint(pid);
        rss_series.push(rss);
        total_errors += window.errors.len();
        first_errors.extend(window.errors.iter().take(5).cloned());
        println!(
            "{:>6} {:>9.0} {:>8.2} {:>8.1} {:>7.1} {:>7.1} {:>7} {:>10} {:>8}",
            started.elapsed().as_secs(),
            per_second("me"),
            percentile(&window.me_latencies_us, 0.99),
            per_second("login"),
            per_second("refresh"),
            per_second("rotate"),
            window.errors.len(),
            rss,
            fds,
        );
        if done {
            break;
        }
    }
    for task in running {
        task.await.expect("worker");
    }
    let (min, max) = (
        rss_series.iter().min().copied().unwrap_or(0),
        rss_series.iter().max().copied().unwrap_or(0),
    );
    println!(
        "soak: {}s, {users} users, {workers} workers; errors {total_errors}; server RSS {} → {} MiB (min {min}, max {max})",
        started.elapsed().as_secs(),
        rss_series.first().copied().unwrap_or(0),
        rss_series.last().copied().unwrap_or(0),
    );
    for error in first_errors.iter().take(20) {
        println!("  error: {error}");
    }
    if total_errors > 0 {
        std::process::exit(1);
    }
}
