//! A small OTLP/HTTP receiver: takes `POST /v1/traces` (protobuf), keeps
//! every request's raw bytes and its decoded spans, and answers a status the
//! test sets.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

#[derive(Default)]
struct State {
    status: Mutex<u16>,
    bodies: Mutex<Vec<Vec<u8>>>,
    requests: Mutex<Vec<ExportTraceServiceRequest>>,
}

pub struct OtlpReceiver {
    /// The base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    state: Arc<State>,
}

async fn receive(state: web::Data<State>, body: web::Bytes) -> HttpResponse {
    state.bodies.lock().unwrap().push(body.to_vec());
    if let Ok(request) = ExportTraceServiceRequest::decode(body.as_ref()) {
        state.requests.lock().unwrap().push(request);
    }
    let status = *state.status.lock().unwrap();
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/x-protobuf")
        .finish()
}

impl OtlpReceiver {
    pub fn start(status: u16) -> Self {
        let state = Arc::new(State {
            status: Mutex::new(status),
            ..State::default()
        });
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 << 20))
                .route("/v1/traces", web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    /// Every span received so far, with the service name it came under.
    pub fn spans(&self) -> Vec<(String, Span)> {
        let requests = self.state.requests.lock().unwrap();
        let mut spans = Vec::new();
        for request in requests.iter() {
            for resource in &request.resource_spans {
                let service = resource
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                    .and_then(|a| a.value.as_ref()?.value.as_ref())
                    .map(|v| match v {
                        Value::StringValue(s) => s.clone(),
                        other => format!("{other:?}"),
                    })
                    .unwrap_or_default();
                for scope in &resource.scope_spans {
                    for span in &scope.spans {
                        spans.push((service.clone(), span.clone()));
                    }
                }
            }
        }
        spans
    }

    /// Every byte received, all requests together.
    pub fn bytes(&self) -> Vec<u8> {
        self.state.bodies.lock().unwrap().concat()
    }

    pub fn requests(&self) -> usize {
        self.state.bodies.lock().unwrap().len()
    }

    /// Waits up to `within` for spans `wanted` accepts; all spans then.
    pub async fn wait_for(
        &self,
        within: Duration,
        wanted: impl Fn(&[(String, Span)]) -> bool,
    ) -> Vec<(String, Span)> {
        let deadline = Instant::now() + within;
        loop {
            let spans = self.spans();
            if wanted(&spans) || Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A span attribute's value as text.
pub fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|a| a.key == key)?
        .value
        .as_ref()?;
    Some(match value.value.as_ref()? {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::BoolValue(b) => b.to_string(),
        other => format!("{other:?}"),
    })
}
