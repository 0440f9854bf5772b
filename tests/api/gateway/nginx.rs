//! A real nginx running `examples/nginx/` as written (only addresses swapped).

use std::path::Path;
use std::process::Stdio;

use super::{Gateway, echo_upstream, example, free_port, gateway_cases, installed, listening};
use crate::helpers::{TestApp, spawn_app_with, test_settings};

/// nginx running the example configuration, stopped when dropped.
struct Nginx {
    port: u16,
    process: tokio::process::Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(binary: &Path, app: &TestApp, upstream: u16) -> Self {
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
        let nginx = Self { port, process, dir };
        listening(port, || nginx.log()).await;
        nginx
    }
}

impl Gateway for Nginx {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.process.start_kill();
    }
}

#[tokio::test]
async fn nginx_auth_request_lets_valid_tokens_through_with_the_identity() {
    let Some(binary) = installed(&["/usr/sbin/nginx", "/usr/bin/nginx"], "nginx-light") else {
        return;
    };
    let app = spawn_app_with(test_settings()).await;
    let (upstream, upstream_handle) = echo_upstream();
    let nginx = Nginx::start(&binary, &app, upstream).await;
    gateway_cases(&app, &nginx).await;
    upstream_handle.stop(true).await;
}
