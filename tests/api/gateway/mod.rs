//! Gateways in front of an upstream, asking the service about every request
//! through `/v1/forward-auth` with the configurations in `examples/`: nginx
//! and Caddy run for real (`nginx`, `caddy`), with the same cases
//! (`gateway_cases`); Traefik's and Envoy's, which cannot be installed here,
//! are parsed and their fields that matter checked (`configs`).

mod caddy;
mod configs;
mod nginx;
mod permissions;

use std::net::TcpListener;
use std::path::PathBuf;

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

/// A gateway's binary, if installed (`.ci/run` installs them; CI fails
/// without).
fn installed(candidates: &[&str], package: &str) -> Option<PathBuf> {
    let found = candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{package} is not installed; .ci/run installs it"
        );
        eprintln!("skipped: {package} is not installed (apt-get install {package})");
    }
    found
}

/// The example configuration `file` with the documented addresses swapped
/// for the test's: the service, the upstream and the gateway's own port.
fn example(file: &str, app: &TestApp, upstream: u16, port: u16) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(file);
    std::fs::read_to_string(path)
        .unwrap()
        .replace("127.0.0.1:8080", app.address.trim_start_matches("http://"))
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{upstream}"))
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"))
}

/// Waits for a gateway to listen on `port`; `log` says why not.
async fn listening(port: u16, log: impl Fn() -> String) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the gateway did not start: {}", log());
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
            HttpResponse::Ok().json(json!({
                "method": req.method().as_str(),
                "query": req.query_string(),
                "headers": headers,
            }))
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

/// A gateway under test, running until dropped: where it listens, and the
/// file in its folder it logs to.
struct Gateway {
    port: u16,
    process: tokio::process::Child,
    dir: tempfile::TempDir,
    log: &'static str,
}

impl Gateway {
    /// Waits for the gateway started as `process` to listen on `port`.
    async fn started(
        port: u16,
        process: tokio::process::Child,
        dir: tempfile::TempDir,
        log: &'static str,
    ) -> Self {
        let gateway = Self {
            port,
            process,
            dir,
            log,
        };
        listening(port, || gateway.log()).await;
        gateway
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(self.log)).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.process.start_kill();
    }
}

/// Runs `gateway_cases` through the gateway `start` makes in front of an
/// echo upstream.
async fn run_cases(start: impl AsyncFnOnce(&TestApp, u16) -> Gateway) {
    let app = spawn_app_with(test_settings()).await;
    let (upstream, upstream_handle) = echo_upstream();
    let gateway = start(&app, upstream).await;
    gateway_cases(&app, &gateway).await;
    upstream_handle.stop(true).await;
}

/// What every gateway configuration must do, nginx's and Caddy's alike.
async fn gateway_cases(app: &TestApp, gateway: &Gateway) {
    let client = reqwest::Client::new();
    let member = app.tenant_with_user("acme", "alice").await;
    app.create_user("acme", "root", "admin").await;
    let admin_token = app.token("acme", "root").await;
    let get = |path: &str, token: Option<&str>| {
        let (url, token) = (gateway.url(path), token.map(str::to_owned));
        let client = client.clone();
        async move { call(&client, reqwest::Method::GET, &url, token.as_deref()).await }
    };

    // No token, a forged one: 401 with the challenge, nothing upstream.
    let none = get("/orders", None).await;
    assert_eq!(none.status(), 401, "{}", gateway.log());
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
    assert_eq!(get("/orders", Some(&forged)).await.status(), 401);
    let garbage = format!("{}.{}.x", b64(&json!({"alg": "none"})), b64(&json!({})));
    assert_eq!(get("/", Some(&garbage)).await.status(), 401);

    // A valid token: through, for any method, with the identity overwriting
    // what the client sent.
    for method in [
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
    ] {
        let url = gateway.url("/orders/7");
        let response = call(&client, method.clone(), &url, Some(&member.token)).await;
        assert_eq!(response.status(), 200, "{method}: {}", gateway.log());
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

    // A client URL with a query string: through, the query upstream as sent.
    let paged = get("/api/orders?page=2&sort=desc", Some(&member.token)).await;
    assert_eq!(paged.status(), 200, "a query string: {}", gateway.log());
    let echoed: Value = paged.json().await.unwrap();
    assert_eq!(echoed["query"], "page=2&sort=desc");

    // An admin-only location: a member is refused, whatever the client adds
    // to its own URL; an admin passes.
    for path in [
        "/admin/users",
        "/admin/users?role=member",
        "/admin/users?page=1&role=member&tenant=acme",
    ] {
        let refused = get(path, Some(&member.token)).await;
        assert_eq!(refused.status(), 403, "a member at {path}");
    }
    let admitted = get("/admin/users?page=2", Some(&admin_token)).await;
    assert_eq!(admitted.status(), 200, "{}", gateway.log());
    let echoed: Value = admitted.json().await.unwrap();
    assert_eq!(echoed["headers"]["x-auth-role"], "admin");

    permissions::permission_cases(app, gateway, &member).await;

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
    assert_eq!(get("/orders", Some(&member.token)).await.status(), 401);
    assert_eq!(
        app.counter(
            r#"tenant_jwt_http_requests_total{method="GET",route="/v1/forward-auth",status="200"}"#
        )
        .await
        .map(|n| n >= 2.0),
        Some(true),
        "gateway checks are counted under their own route"
    );
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
    // Gateways may pass the client's query on: what the service does not
    // know is ignored, and the client cannot loosen what the gateway set.
    let status = |query: &'static str| {
        let cookie = with_cookie.clone();
        async move { check(query, cookie).await.unwrap().status() }
    };
    assert_eq!(status("?page=2&sort=desc").await, 200, "unknown: ignored");
    assert_eq!(
        status("?role=admin&page=2&role=member").await,
        403,
        "a client's own role=member does not undo the gateway's role=admin"
    );
    assert_eq!(
        status("?tenant=acme&tenant=globex").await,
        403,
        "every tenant named must be the user's"
    );
    assert_eq!(status("?role=root").await, 400, "a bad value fails closed");
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
