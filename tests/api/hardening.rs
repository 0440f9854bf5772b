//! Clients that hold connections open or send broken heads: whatever they
//! do, their connections are cut in bounded time, the service keeps
//! answering everyone else, and nothing is logged at ERROR.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{TestApp, captured_logs, spawn_app_with, test_settings};

/// A connection from `source` (another loopback address than the one the
/// test's own client uses, so per-address caps tell them apart).
async fn connect_from(source: &str, app: &TestApp) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let target: SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
    socket.connect(target).await.unwrap()
}

/// Reads until the server closes the connection (or `deadline` passes);
/// what was read, if the server did close it.
async fn read_until_closed(stream: &mut TcpStream, deadline: Instant) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

/// How long `/healthz` and `/v1/me` take to answer, the slower of the two.
async fn slowest_answer(app: &TestApp, token: &str) -> Duration {
    let started = Instant::now();
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let health_took = started.elapsed();
    let started = Instant::now();
    assert_eq!(app.me(token).await.status(), 200);
    health_took.max(started.elapsed())
}

#[tokio::test]
async fn stalled_request_bodies_are_cut_while_the_service_keeps_answering() {
    const STALLED: usize = 800;
    tenant_jwt::http::connections::raise_fd_limit();
    let mut settings = test_settings();
    settings.http.max_connections_per_ip = 2 * STALLED;
    let app = spawn_app_with(settings).await;
    let member = app.tenant_with_user("acme", "alice").await;

    let started = Instant::now();
    let mut stalled = Vec::with_capacity(STALLED);
    for _ in 0..STALLED {
        let mut stream = connect_from("127.0.0.2", &app).await;
        stream
            .write_all(
                b"POST /v1/tenants/acme/login HTTP/1.1\r\nHost: tenant-jwt\r\n\
                  Content-Type: application/json\r\nContent-Length: 16000\r\n\r\n{\"user",
            )
            .await
            .unwrap();
        stalled.push(stream);
    }
    // While they are held: probes and token checks answer at once.
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        slowest = slowest.max(slowest_answer(&app, &member.token).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        slowest < Duration::from_secs(1),
        "an answer took {slowest:?} with {STALLED} stalled bodies held"
    );

    let deadline = started + Duration::from_secs(20);
    for (n, stream) in stalled.iter_mut().enumerate() {
        let seen = read_until_closed(stream, deadline).await;
        let seen = seen.unwrap_or_else(|| panic!("connection {n} still open after 20 s"));
        assert!(
            seen.starts_with(b"HTTP/1.1 408"),
            "connection {n} got {:?}",
            String::from_utf8_lossy(&seen[..seen.len().min(40)])
        );
    }
    assert!(slowest_answer(&app, &member.token).await < Duration::from_secs(1));
}

#[tokio::test]
async fn connections_over_the_per_address_cap_are_closed_at_once() {
    let mut settings = test_settings();
    settings.http.max_connections_per_ip = 20;
    let app = spawn_app_with(settings).await;
    let member = app.tenant_with_user("acme", "alice").await;

    let mut held = Vec::new();
    for _ in 0..30 {
        held.push(connect_from("127.0.0.3", &app).await);
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut closed = 0;
    for stream in &mut held {
        if read_until_closed(stream, deadline).await.is_some() {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 10,
        "the ten over the cap are closed, the twenty kept"
    );
    assert_eq!(
        app.counter(r#"tenant_jwt_connections_refused_total{cap="per_address"}"#)
            .await,
        Some(10.0)
    );
    assert!(
        slowest_answer(&app, &member.token).await < Duration::from_secs(1),
        "another address is served as usual"
    );
    drop(held);
    // The held ones closed: the address gets its slots back.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from("127.0.0.3", &app).await;
    again
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: tenant-jwt\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut again, Instant::now() + Duration::from_secs(2)).await;
    assert!(answer.unwrap().starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn a_malformed_head_is_counted_not_logged_as_an_error() {
    let app = spawn_app_with(test_settings()).await;
    let metric = "tenant_jwt_http_connection_errors_total";
    let before = app.counter(metric).await.unwrap_or(0.0);
    for head in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\n\r\n",
    ] {
        let mut stream = connect_from("127.0.0.1", &app).await;
        stream.write_all(head).await.unwrap();
        let answer = read_until_closed(&mut stream, Instant::now() + Duration::from_secs(2)).await;
        let answer = answer.expect("the server closes a malformed request's connection");
        assert!(
            answer.starts_with(b"HTTP/1.1 400"),
            "{head:?} got {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    let mut after = before;
    for _ in 0..20 {
        after = app.counter(metric).await.unwrap_or(0.0);
        if after >= before + 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(after >= before + 3.0, "counted: {before} -> {after}");
    let errors: Vec<_> = captured_logs()
        .lines()
        .filter(|line| line.contains(r#""level":"ERROR""#) && line.contains("actix_http"))
        .map(str::to_owned)
        .collect();
    assert!(errors.is_empty(), "actix errors were logged: {errors:#?}");
}
