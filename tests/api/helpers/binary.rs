//! The real binary, configured through its environment.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use tenant_jwt::config::Settings;

use super::service_key;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real binary, configured through its environment, logging JSON to a
/// pipe on stderr.
pub fn binary(settings: &Settings, port: u16) -> tokio::process::Command {
    let master_key = match &settings.master_key {
        tenant_jwt::config::MasterKeySource::Inline(key) => key.to_string(),
        tenant_jwt::config::MasterKeySource::File(_) => unreachable!(),
    };
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenant-jwt"));
    command
        .env_clear()
        .env("DATABASE_URL", settings.database.url.as_str())
        .env(
            "TENANT_JWT_DB_TIMEOUT",
            format!("{}ms", settings.database.timeout.as_millis()),
        )
        .env(
            "TENANT_JWT_REQUIRE_SYNC_REPLICATION",
            settings.database.require_sync_replication.to_string(),
        )
        .env("REDIS_URL", &settings.redis.url)
        .env("TENANT_JWT_REDIS_PREFIX", &settings.redis.key_prefix)
        .env(
            "TENANT_JWT_REDIS_TIMEOUT",
            format!("{}ms", settings.redis.command_timeout.as_millis()),
        )
        .env("TENANT_JWT_LISTEN", format!("127.0.0.1:{port}"))
        .env("TENANT_JWT_MASTER_KEY", master_key)
        .env("TENANT_JWT_SERVICE_KEYS", service_key())
        .env("TENANT_JWT_HASH_WORKERS", "1")
        .env("TENANT_JWT_LOGIN_LIMIT_PER_IP", "1000")
        .env("TENANT_JWT_LOGIN_LIMIT_PER_ACCOUNT_IP", "1000")
        .env("TENANT_JWT_LOGIN_LIMIT_PER_ACCOUNT", "1000")
        .env(
            "TENANT_JWT_FAILED_VERIFICATION_LIMIT_PER_IP",
            settings.limits.failed_verifications_per_ip.to_string(),
        )
        .env("TENANT_JWT_LOG_FORMAT", "json")
        .env(
            "TENANT_JWT_WEBHOOK_ALLOW_PRIVATE",
            settings.webhooks.allow_private.to_string(),
        )
        .env(
            "TENANT_JWT_WEBHOOK_POLL_INTERVAL",
            format!("{}ms", settings.webhooks.poll_interval.as_millis()),
        )
        .env(
            "TENANT_JWT_WEBHOOK_RETRY_SCHEDULE",
            (settings.webhooks.retry_schedule.iter())
                .map(|s| s.as_secs().to_string())
                .collect::<Vec<_>>()
                .join(","),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The binary, running, with its logs read as they come (a full pipe would
/// block it).
pub struct Running {
    pub child: tokio::process::Child,
    port: u16,
    logs: tokio::task::JoinHandle<std::io::Result<String>>,
    pub client: reqwest::Client,
}

impl Running {
    pub fn start(settings: &Settings) -> Self {
        Self::start_with(settings, &[])
    }

    /// `start`, with these variables added to its environment.
    pub fn start_with(settings: &Settings, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut command = binary(settings, port);
        command.envs(env.iter().copied());
        let mut child = command.spawn().unwrap();
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

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits (10 s at most) until `/readyz` answers `status`.
    pub async fn readyz_answers(&self, status: u16) -> bool {
        for _ in 0..100 {
            let ready = self.client.get(self.url("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == status) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    pub fn sigterm(&self) {
        let pid = self.child.id().unwrap().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
    }

    /// Waits (15 s at most) for the exit; asserts it is a success and returns the logs.
    pub async fn exits_cleanly(mut self) -> String {
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("exits")
            .unwrap();
        assert!(status.success(), "exit status {status}");
        self.logs.await.unwrap().unwrap()
    }
}
