//! A real nginx in front of an upstream, asking the service about every
//! request through `/v1/forward-auth` with the configuration in
//! `examples/nginx/`, run as written (only addresses swapped).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Map, Value, json};

use crate::helpers::{TestApp, b64, claims_for, sign, spawn_app_with, test_settings};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx, if installed (`.ci/run` installs nginx-light; CI fails without it).
fn nginx_binary() -> Option<PathBuf> {
    let found = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx is not installed; .ci/run installs nginx-light"
        );
        eprintln!("skipped: nginx is not installed (apt-get install nginx-light)");
    }
    found
}

/// An upstream that answers every request with the headers it received.
fn echo_upstream() -> (u16, actix_web::dev::ServerHandle) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|req: HttpRequest| async move {
            let headers: Map<String, Value> = req
                .headers()
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_owned(), Value::String(value))
                })
                .collect();
            HttpResponse::Ok().json(json!({ "method": req.method().as_str(), "headers": headers }))
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (port, handle)
}

/// nginx running the example configuration, stopped when dropped.
struct Nginx {
    port: u16,
    process: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(binary: &Path, app: &TestApp, upstream: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nginx");
        let port = free_port();
        let service = app.address.trim_start_matches("http://");
        for file in [
            "tenant-jwt.conf",
            "tenant-jwt-identity.conf",
            "tenant-jwt-subrequest.conf",
        ] {
            let text = std::fs::read_to_string(examples.join(file))
                .unwrap()
                .replace("127.0.0.1:8080", service)
                .replace("127.0.0.1:3000", &format!("127.0.0.1:{upstream}"))
                .replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"))
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
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self {
                    port,
                    process,
                    _dir: dir,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
        panic!("nginx did not start: {log}");
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("error.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.process.start_kill();
    }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = client
        .request(method, url)
        .header("X-Auth-User-Id", "forged-by-the-client")
        .header("X-Auth-Role", "admin");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn nginx_auth_request_lets_valid_tokens_through_with_the_identity() {
    let Some(binary) = nginx_binary() else { return };
    let app = spawn_app_with(test_settings()).await;
    let (upstream, upstream_handle) = echo_upstream();
    let nginx = Nginx::start(&binary, &app, upstream).await;
    let client = reqwest::Client::new();
    let member = app.tenant_with_user("acme", "alice").await;
    app.create_user("acme", "root", "admin").await;
    let admin_token = app.token("acme", "root").await;

    // No token, a forged one: 401 with the challenge, nothing upstream.
    let none = call(&client, reqwest::Method::GET, &nginx.url("/orders"), None).await;
    assert_eq!(none.status(), 401);
    assert!(
        none.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let forged = sign(
        &claims_for(member.id, &member.tenant_id),
        b"not-the-secret",
        "1",
    );
    let forged = call(
        &client,
        reqwest::Method::GET,
        &nginx.url("/orders"),
        Some(&forged),
    )
    .await;
    assert_eq!(forged.status(), 401);
    let garbage = format!("{}.{}.x", b64(&json!({"alg": "none"})), b64(&json!({})));
    let garbage = call(
        &client,
        reqwest::Method::GET,
        &nginx.url("/"),
        Some(&garbage),
    )
    .await;
    assert_eq!(garbage.status(), 401);

    // A valid token: through, for any method, with the identity overwriting
    // what the client sent.
    for method in [
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
    ] {
        let response = call(
            &client,
            method.clone(),
            &nginx.url("/orders/7"),
            Some(&member.token),
        )
        .await;
        assert_eq!(response.status(), 200, "{method}: {}", nginx.error_log());
        let echoed: Value = response.json().await.unwrap();
        assert_eq!(echoed["method"], method.as_str());
        let headers = &echoed["headers"];
        assert_eq!(headers["x-auth-user-id"], member.id.to_string(), "{method}");
        assert_eq!(headers["x-auth-tenant-id"], member.tenant_id, "{method}");
        assert_eq!(headers["x-auth-tenant"], "acme");
        assert_eq!(headers["x-auth-username"], "alice");
        assert_eq!(
            headers["x-auth-role"], "member",
            "the client's claim is overwritten"
        );
        assert!(
            headers["x-auth-session-id"]
                .as_str()
                .is_some_and(|sid| sid.len() == 36)
        );
    }

    // An admin-only location: a member is refused, an admin passes.
    let refused = call(
        &client,
        reqwest::Method::GET,
        &nginx.url("/admin/users"),
        Some(&member.token),
    )
    .await;
    assert_eq!(refused.status(), 403);
    let admitted = call(
        &client,
        reqwest::Method::GET,
        &nginx.url("/admin/users"),
        Some(&admin_token),
    )
    .await;
    assert_eq!(admitted.status(), 200);
    let echoed: Value = admitted.json().await.unwrap();
    assert_eq!(echoed["headers"]["x-auth-role"], "admin");

    // Rotating the member's secret: their token stops at the gateway.
    let rotated = app
        .client
        .post(app.url(&format!(
            "/v1/tenants/acme/users/{}/rotate-secret",
            member.id
        )))
        .bearer_auth(crate::helpers::service_key())
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let after = call(
        &client,
        reqwest::Method::GET,
        &nginx.url("/orders"),
        Some(&member.token),
    )
    .await;
    assert_eq!(after.status(), 401);
    assert_eq!(
        app.counter(
            r#"tenant_jwt_http_requests_total{method="GET",route="/v1/forward-auth",status="200"}"#
        )
        .await
        .map(|n| n >= 2.0),
        Some(true),
        "gateway checks are counted under their own route"
    );
    upstream_handle.stop(true).await;
}

#[tokio::test]
async fn forward_auth_reads_the_configured_cookie_and_checks_the_tenant() {
    let mut settings = test_settings();
    settings.http.forward_auth_cookie = Some("tj_session".into());
    let app = spawn_app_with(settings).await;
    let member = app.tenant_with_user("acme", "alice").await;
    let check = |query: &str, cookie: Option<String>| {
        let mut request = app.client.get(app.url(&format!("/v1/forward-auth{query}")));
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        request.send()
    };
    let with_cookie = Some(format!("theme=dark; tj_session={}; other=1", member.token));
    let ok = check("", with_cookie.clone()).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-auth-username"], "alice");
    assert_eq!(ok.bytes().await.unwrap().len(), 0, "no body");
    assert_eq!(
        check("?tenant=acme", with_cookie.clone())
            .await
            .unwrap()
            .status(),
        200
    );
    let elsewhere = check("?tenant=globex", with_cookie.clone()).await.unwrap();
    assert_eq!(elsewhere.status(), 403);
    assert_eq!(
        elsewhere.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(
        check("?rol=admin", with_cookie.clone())
            .await
            .unwrap()
            .status(),
        400,
        "a misspelt requirement fails closed"
    );
    // Envoy's form: the original path and query after the prefix, ignored.
    let envoy = app
        .client
        .delete(app.url("/v1/forward-auth/orders/7?role=admin&page=2"))
        .bearer_auth(&member.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        envoy.status(),
        200,
        "the original query is not a requirement"
    );
    assert_eq!(envoy.headers()["x-auth-role"], "member");
    let other_cookie = Some(format!("session={}", member.token));
    assert_eq!(check("", other_cookie).await.unwrap().status(), 401);
    assert_eq!(check("", None).await.unwrap().status(), 401);
}
