//! A real Caddy running `examples/caddy/Caddyfile` as written (addresses
//! swapped, and a global block that turns off its admin API so that tests
//! can run side by side).

use std::path::Path;
use std::process::Stdio;

use super::{Gateway, example, free_port, installed, run_cases};
use crate::helpers::TestApp;

/// Caddy running the example configuration.
async fn caddy(binary: &Path, app: &TestApp, upstream: u16) -> Gateway {
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
        // Caddy keeps its state under these: nothing outside the test's folder.
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    Gateway::started(port, process, dir, "caddy.log").await
}

#[tokio::test]
async fn caddy_forward_auth_lets_valid_tokens_through_with_the_identity() {
    let Some(binary) = installed(&["/usr/bin/caddy", "/usr/local/bin/caddy"], "caddy") else {
        return;
    };
    run_cases(async |app, upstream| caddy(&binary, app, upstream).await).await;
}
