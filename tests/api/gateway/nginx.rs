//! A real nginx running `examples/nginx/` as written (only addresses swapped).

use std::path::Path;
use std::process::Stdio;

use super::{Gateway, example, free_port, installed, run_cases};
use crate::helpers::TestApp;

/// nginx running the example configuration.
async fn nginx(binary: &Path, app: &TestApp, upstream: u16) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    for file in [
        "tenant-jwt.conf",
        "tenant-jwt-identity.conf",
        "tenant-jwt-subrequest.conf",
    ] {
        let text = example(&format!("nginx/{file}"), app, upstream, port)
            .replace("/etc/nginx/", &format!("{}/", dir.path().display()));
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    let root = dir.path().display();
    let main = format!(
        "daemon off;\nmaster_process off;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\n\
         events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {root}/body;\n  \
         proxy_temp_path {root}/proxy;\n  include {root}/tenant-jwt.conf;\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
    let process = tokio::process::Command::new(binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    Gateway::started(port, process, dir, "error.log").await
}

#[tokio::test]
async fn nginx_auth_request_lets_valid_tokens_through_with_the_identity() {
    let Some(binary) = installed(&["/usr/sbin/nginx", "/usr/bin/nginx"], "nginx-light") else {
        return;
    };
    run_cases(async |app, upstream| nginx(&binary, app, upstream).await).await;
}
