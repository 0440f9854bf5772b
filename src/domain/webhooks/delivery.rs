//! The delivery worker: every instance runs one. Each round it leases the
//! due messages (a lease per round, `claim_due`), sends each outside any
//! transaction, and records the attempt and what follows (`schedule::next`)
//! only while its lease still holds. An instance that dies mid-attempt
//! leaves a lease that runs out; another instance then takes the message
//! over with the same `webhook-id`: delivery is at least once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use prometheus::{Gauge, HistogramVec, IntCounterVec, IntGauge};
use serde_json::json;
use tokio::sync::Semaphore;

use super::endpoints::message_id;
use super::guard::{self, GuardedResolver};
use super::schedule::{self, Next, Outcome};
use super::signing::{self, WebhookSecret};

use crate::config::WebhookSettings;
use crate::db::webhooks::{After, Claimed};
use crate::db::{self, Db};
use crate::domain::audit::{self, AuditContext};
use crate::domain::error::{DomainError, ErrorChain};
use crate::domain::keys::secrets::MasterKey;
use crate::metrics::{Area, Metrics};
use crate::telemetry::otel;

pub struct WebhookMetrics {
    deliveries: IntCounterVec,
    attempts: IntCounterVec,
    attempt_seconds: HistogramVec,
    pending: IntGauge,
    oldest_pending: Gauge,
}

impl Area for WebhookMetrics {
    fn register(metrics: &Metrics) -> Self {
        Self {
            deliveries: metrics.counter_vec(
                "webhook_deliveries_total",
                "Webhook messages finished by outcome: delivered, failed (schedule exhausted), gone (410, endpoint disabled)",
                &["outcome"],
            ),
            attempts: metrics.counter_vec(
                "webhook_attempts_total",
                "Webhook delivery attempts by result: 2xx, 4xx, 5xx, other (status), timeout, error",
                &["result"],
            ),
            attempt_seconds: metrics.histogram_vec(
                "webhook_attempt_duration_seconds",
                "Time from sending a webhook to its answer",
                vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                &[],
            ),
            pending: metrics.gauge("webhook_messages_pending", "Webhook messages not yet delivered or failed"),
            oldest_pending: metrics.float_gauge(
                "webhook_oldest_pending_seconds",
                "Age of the oldest pending webhook message (0 if none)",
            ),
        }
    }
}

/// An attempt's end, as stored and counted.
struct Attempted {
    outcome: Outcome,
    status: Option<u16>,
    error: Option<&'static str>,
    took: Duration,
}

#[derive(Clone)]
pub struct Deliveries {
    db: Db,
    master_key: Arc<MasterKey>,
    client: reqwest::Client,
    settings: WebhookSettings,
    metrics: Arc<WebhookMetrics>,
}

impl Deliveries {
    pub fn new(
        db: Db,
        master_key: Arc<MasterKey>,
        settings: WebhookSettings,
        metrics: &Metrics,
    ) -> Result<Self, DomainError> {
        Ok(Self {
            client: client(&settings)?,
            db,
            master_key,
            settings,
            metrics: metrics.area::<WebhookMetrics>(),
        })
    }

    /// Sends due messages until cancelled: a round every poll interval, at
    /// most `concurrency` attempts in flight.
    pub async fn run(self) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut ticks = tokio::time::interval(self.settings.poll_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round = 0u64;
        loop {
            ticks.tick().await;
            round += 1;
            if let Err(e) = self.round(&slots).await {
                tracing::warn!(error = %ErrorChain(&e), "claiming webhook messages failed; trying again");
            }
            if round % 20 == 1 {
                self.observe().await;
            }
        }
    }

    async fn round(&self, slots: &Arc<Semaphore>) -> Result<(), DomainError> {
        let free = slots.available_permits();
        if free == 0 {
            return Ok(());
        }
        let lease = uuid::Uuid::new_v4();
        let lease_ms = self.settings.lease.as_millis() as i64;
        let claimed = self
            .db
            .query(async |conn| db::webhooks::claim_due(conn, lease, lease_ms, free as i64).await)
            .await?;
        for message in claimed {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                break;
            };
            let this = self.clone();
            tokio::spawn(async move {
                otel::in_root_span("webhook delivery", this.deliver(message, lease)).await;
                drop(permit);
            });
        }
        Ok(())
    }

    /// One attempt at `message`, and its record.
    async fn deliver(&self, message: Claimed, lease: uuid::Uuid) {
        let attempted_at = Utc::now();
        let attempted = match self.secrets(&message) {
            Ok(secrets) => self.send(&message, &secrets).await,
            Err(e) => {
                tracing::error!(message_id = %message_id(message.id), error = %ErrorChain(&e), "a webhook secret did not open");
                Attempted {
                    outcome: Outcome::Failed { retry_after: None },
                    status: None,
                    error: Some("signing secret unavailable"),
                    took: Duration::ZERO,
                }
            }
        };
        self.count(&attempted);
        let step = usize::try_from(message.step).unwrap_or(0);
        let jitter = rand::random::<f64>() * 2.0 - 1.0;
        let next = schedule::next(
            &self.settings.retry_schedule,
            step,
            &attempted.outcome,
            jitter,
        );
        let after = match &next {
            Next::Delivered => After::Delivered,
            Next::Retry { wait, step } => After::Retry {
                wait_ms: wait.as_millis() as i64,
                step: *step as i32,
            },
            Next::Failed | Next::DisableEndpoint => After::Failed,
        };
        let recorded = self
            .db
            .transaction(async |conn| {
                let held = db::webhooks::finish(
                    conn,
                    message.id,
                    lease,
                    message.attempts + 1,
                    attempted_at,
                    attempted.status.map(i32::from),
                    attempted.error,
                    attempted.took.as_millis().min(i32::MAX as u128) as i32,
                    after,
                )
                .await?;
                if held
                    && next == Next::DisableEndpoint
                    && let Some(tenant) = db::webhooks::disable(conn, message.endpoint_id).await?
                {
                    let details =
                        json!({ "webhook_id": message.endpoint_id, "reason": "410 Gone" });
                    let ctx = &AuditContext::SYSTEM;
                    audit::record(conn, ctx, tenant, "webhook_disabled", None, details).await?;
                }
                Ok::<_, DomainError>(held)
            })
            .await;
        match recorded {
            Ok(true) => match next {
                Next::Delivered => self
                    .metrics
                    .deliveries
                    .with_label_values(&["delivered"])
                    .inc(),
                Next::Failed => self.metrics.deliveries.with_label_values(&["failed"]).inc(),
                Next::DisableEndpoint => self.metrics.deliveries.with_label_values(&["gone"]).inc(),
                Next::Retry { .. } => {}
            },
            Ok(false) => tracing::warn!(
                message_id = %message_id(message.id),
                "a webhook attempt outlived its lease; another instance has the message"
            ),
            // The lease runs out and the message is sent again: at least once.
            Err(e) => tracing::warn!(
                message_id = %message_id(message.id),
                error = %ErrorChain(&e),
                "recording a webhook attempt failed; it will be made again"
            ),
        }
    }

    /// The secrets that sign now: the current one, and the one before while
    /// its overlap lasts.
    fn secrets(&self, message: &Claimed) -> Result<Vec<WebhookSecret>, DomainError> {
        let mut secrets = vec![WebhookSecret::unseal(
            &self.master_key,
            message.endpoint_id,
            &message.secret,
        )?];
        if let (Some(previous), Some(until)) = (&message.previous_secret, message.previous_until)
            && until > message.now
        {
            secrets.push(WebhookSecret::unseal(
                &self.master_key,
                message.endpoint_id,
                previous,
            )?);
        }
        Ok(secrets)
    }

    async fn send(&self, message: &Claimed, secrets: &[WebhookSecret]) -> Attempted {
        let id = message_id(message.id);
        let timestamp = Utc::now().timestamp();
        let signature = signing::signature_header(secrets, &id, timestamp, message.body.as_bytes());
        let started = Instant::now();
        let failed = |error, started: Instant| Attempted {
            outcome: Outcome::Failed { retry_after: None },
            status: None,
            error: Some(error),
            took: started.elapsed(),
        };
        // The client's resolver guards names; an address in the URL is
        // never resolved, so it is checked here.
        let allow_private = self.settings.allow_private;
        let Ok(url) = guard::parse_url(&message.url, allow_private) else {
            return failed("address not allowed", started);
        };
        let literal = matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)));
        if literal && guard::resolve(&url, allow_private).await.is_err() {
            return failed("address not allowed", started);
        }
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(message.body.clone())
            .send()
            .await;
        match response {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Attempted {
                    outcome: Outcome::of_response(status, retry_after.as_deref()),
                    status: Some(status),
                    error: None,
                    took: started.elapsed(),
                }
            }
            Err(e) if e.is_timeout() => failed("timeout", started),
            Err(e) if e.is_connect() => failed("connection failed", started),
            Err(_) => failed("request failed", started),
        }
    }

    fn count(&self, attempted: &Attempted) {
        let result = match (attempted.status, attempted.error) {
            (Some(200..=299), _) => "2xx",
            (Some(400..=499), _) => "4xx",
            (Some(500..=599), _) => "5xx",
            (Some(_), _) => "other",
            (None, Some("timeout")) => "timeout",
            (None, _) => "error",
        };
        self.metrics.attempts.with_label_values(&[result]).inc();
        self.metrics
            .attempt_seconds
            .with_label_values(&[] as &[&str])
            .observe(attempted.took.as_secs_f64());
    }

    /// Brings the queue gauges up to date.
    async fn observe(&self) {
        match self
            .db
            .query(async |conn| db::webhooks::backlog(conn).await)
            .await
        {
            Ok(backlog) => {
                self.metrics.pending.set(backlog.pending);
                self.metrics
                    .oldest_pending
                    .set(backlog.oldest_age.unwrap_or(0.0));
            }
            Err(e) => {
                tracing::debug!(error = %ErrorChain(&e), "could not read the webhook backlog")
            }
        }
    }
}

/// The delivery client: TLS with the Mozilla roots, the SSRF guard's
/// resolver, no redirects, no proxy from the environment, the attempt's
/// time limit.
fn client(settings: &WebhookSettings) -> Result<reqwest::Client, DomainError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(DomainError::internal)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .dns_resolver(Arc::new(GuardedResolver {
            allow_private: settings.allow_private,
        }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(settings.timeout)
        .user_agent(concat!(
            "tenant-jwt/",
            env!("CARGO_PKG_VERSION"),
            " (webhooks)"
        ))
        .build()
        .map_err(DomainError::internal)
}
