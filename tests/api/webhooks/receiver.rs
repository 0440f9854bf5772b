//! A real HTTP receiver on loopback: it records every request it is sent
//! and answers as the test tells it to (a status, or holding the request
//! until released).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use tokio::sync::Notify;

/// One request, as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Default)]
struct State {
    received: Mutex<Vec<Received>>,
    status: Mutex<u16>,
    /// While set, requests wait for `release` before answering.
    hold: Mutex<bool>,
    release: Notify,
    arrived: Notify,
}

pub struct Receiver {
    pub url: String,
    state: Arc<State>,
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    state.received.lock().unwrap().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    });
    state.arrived.notify_waiters();
    let held = *state.hold.lock().unwrap();
    if held {
        state.release.notified().await;
    }
    let status = *state.status.lock().unwrap();
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
}

impl Receiver {
    /// Starts a receiver answering `status`.
    pub fn start(status: u16) -> Self {
        let state = Arc::new(State::default());
        *state.status.lock().unwrap() = status;
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        // Runs on the test's runtime, so it stops with the test.
        tokio::spawn(server.run());
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            state,
        }
    }

    pub fn answer(&self, status: u16) {
        *self.state.status.lock().unwrap() = status;
    }

    /// Holds every request from now on until `release`.
    pub fn hold(&self) {
        *self.state.hold.lock().unwrap() = true;
    }

    pub fn release(&self) {
        *self.state.hold.lock().unwrap() = false;
        self.state.release.notify_waiters();
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits up to `within` until `count` requests have arrived; what arrived.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let arrived = self.state.arrived.notified();
            let received = self.received();
            if received.len() >= count || Instant::now() >= deadline {
                return received;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), arrived).await;
        }
    }
}
