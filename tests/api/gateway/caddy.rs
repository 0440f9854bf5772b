//! A real Caddy running `examples/caddy/Caddyfile` as written (addresses
//! swapped, and a global block that turns off its admin API so that tests
//! can run side by side).

use std::path::Path;
use std::process::Stdio;

use super::{Gateway, echo_upstream, example, free_port, gateway_cases, installed, listening};
use crate::helpers::{TestApp, spawn_app_with, test_settings};

/// Caddy running the example configuration, stopped when dropped.
struct Caddy {
    port: u16,
    process: tokio::process::Child,
    dir: tempfile::TempDir,
}

impl Caddy {
    async fn start(binary: &Path, app: &TestApp, upstream: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!(
            "{{\n\tadmin off\n}}\n\n{}",
            example("caddy/Caddyfile", app, upstream, port)
        );
        let file = dir.path().join("Caddyfile");
        std::fs::write(&file, config).unwrap();
        let log = std::fs::File::create(dir.path().join("caddy.log")).unwrap();
        let process = tokio::process::Command::new(binary)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            // Caddy keeps its state under these; nothing outside the test's folder.
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let caddy = Self { port, process, dir };
        listening(port, || caddy.log()).await;
        caddy
    }
}

impl Gateway for Caddy {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("caddy.log")).unwrap_or_default()
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.process.start_kill();
    }
}

#[tokio::test]
async fn caddy_forward_auth_lets_valid_tokens_through_with_the_identity() {
    let Some(binary) = installed(&["/usr/bin/caddy", "/usr/local/bin/caddy"], "caddy") else {
        return;
    };
    let app = spawn_app_with(test_settings()).await;
    let (upstream, upstream_handle) = echo_upstream();
    let caddy = Caddy::start(&binary, &app, upstream).await;
    gateway_cases(&app, &caddy).await;
    upstream_handle.stop(true).await;
}
