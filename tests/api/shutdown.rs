//! The real binary, configured through its environment, shuts down
//! gracefully on SIGTERM: requests in flight finish, then it exits 0.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

use tenant_jwt::config::Settings;

use crate::helpers::{PASSWORD, service_key, test_settings};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real binary, configured through its environment, logging JSON to a
/// pipe on stderr.
fn binary(settings: &Settings, port: u16) -> tokio::process::Command {
    let master_key = match &settings.master_key {
        tenant_jwt::config::MasterKeySource::Inline(key) => key.to_string(),
        tenant_jwt::config::MasterKeySource::File(_) => unreachable!(),
    };
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenant-jwt"));
    command
        .env_clear()
        .env("DATABASE_URL", settings.database.url.as_str())
        .env("REDIS_URL", &settings.redis.url)
        .env("TENANT_JWT_REDIS_PREFIX", &settings.redis.key_prefix)
        .env("TENANT_JWT_LISTEN", format!("127.0.0.1:{port}"))
        .env("TENANT_JWT_MASTER_KEY", master_key)
        .env("TENANT_JWT_SERVICE_KEYS", service_key())
        .env("TENANT_JWT_HASH_WORKERS", "1")
        .env("TENANT_JWT_LOGIN_LIMIT_PER_IP", "1000")
        .env("TENANT_JWT_LOGIN_LIMIT_PER_ACCOUNT_IP", "1000")
        .env("TENANT_JWT_LOGIN_LIMIT_PER_ACCOUNT", "1000")
        .env("TENANT_JWT_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The binary, running, with its logs read as they come (a full pipe would
/// block it).
struct Running {
    child: tokio::process::Child,
    port: u16,
    logs: tokio::task::JoinHandle<std::io::Result<String>>,
    client: reqwest::Client,
}

impl Running {
    fn start(settings: &Settings) -> Self {
        let port = free_port();
        let mut child = binary(settings, port).spawn().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let logs = tokio::spawn(async move {
            let mut logs = String::new();
            stderr.read_to_string(&mut logs).await.map(|_| logs)
        });
        Self {
            child,
            port,
            logs,
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits (10 s at most) until `/readyz` answers `status`.
    async fn readyz_answers(&self, status: u16) -> bool {
        for _ in 0..100 {
            let ready = self.client.get(self.url("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == status) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn sigterm(&self) {
        let pid = self.child.id().unwrap().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
    }

    /// Waits (15 s at most) for the exit; asserts it is a success and returns the logs.
    async fn exits_cleanly(mut self) -> String {
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("exits")
            .unwrap();
        assert!(status.success(), "exit status {status}");
        self.logs.await.unwrap().unwrap()
    }
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish() {
    let settings = test_settings();
    let binary = Running::start(&settings);
    assert!(binary.readyz_answers(200).await, "the binary became ready");
    let (client, base) = (&binary.client, binary.url(""));
    let created = client
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(service_key())
        .json(&json!({ "slug": "acme", "name": "Acme" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created = client
        .post(format!("{base}/v1/tenants/acme/users"))
        .bearer_auth(service_key())
        .json(&json!({ "username": "alice", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    // Sixty logins queue for the single hashing thread (over a second of
    // work, longer than actix's one-second drain poll); when the first is
    // answered the rest are in flight, and the signal arrives.
    let mut logins = JoinSet::new();
    for _ in 0..60 {
        let (client, url) = (client.clone(), format!("{base}/v1/tenants/acme/login"));
        logins.spawn(async move {
            let body = json!({ "username": "alice", "password": PASSWORD });
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
    }
    let first = logins.join_next().await.unwrap().unwrap();
    // On a loaded machine the client may still be opening some of its
    // connections; a connection not yet accepted is not in flight. The other
    // 59 hashes take over a second, so a short pause leaves them in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    binary.sigterm();
    assert_eq!(first.unwrap(), 200);
    while let Some(login) = logins.join_next().await {
        assert_eq!(
            login.unwrap().expect("an in-flight request was cut off"),
            200
        );
    }

    let logs = binary.exits_cleanly().await;
    assert!(logs.contains("graceful shutdown"), "{logs}");
    assert!(logs.contains("\"stopped\""), "{logs}");
}

#[tokio::test]
async fn sigterm_while_waiting_for_postgres_exits_cleanly() {
    let mut settings = test_settings();
    // Nothing listens there: Postgres is "down".
    settings.database.url.set_port(Some(free_port())).unwrap();
    let binary = Running::start(&settings);
    assert!(
        binary.readyz_answers(503).await,
        "the binary answers /readyz with 503 while waiting"
    );
    binary.sigterm();
    let logs = binary.exits_cleanly().await;
    assert!(
        logs.contains("Postgres unreachable; waiting for it"),
        "{logs}"
    );
    assert!(logs.contains("stopped during start-up"), "{logs}");
}
