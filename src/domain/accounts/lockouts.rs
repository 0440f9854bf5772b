//! `login_locked`: an account's login limit was hit. Recorded (audit log,
//! and so the `login.locked` webhook) once per account per minute, however
//! many attempts are refused and on however many instances: each instance
//! remembers whom it reported, and Postgres is asked whether another
//! instance already did. Unknown usernames record nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::db::{self, Db};
use crate::domain::audit::{self, AuditContext};
use crate::domain::error::DomainError;
use crate::types::ids::{TenantSlug, Username};

/// One report per account per this long.
const QUIET: Duration = Duration::from_secs(60);
/// Accounts remembered at most; past it the oldest are forgotten.
const REMEMBERED: usize = 10_000;

#[derive(Clone)]
pub struct Lockouts {
    db: Db,
    reported: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Lockouts {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            reported: Arc::default(),
        }
    }

    /// Whether `account` is due a report now (and notes that it had one).
    fn due(&self, account: String) -> bool {
        let now = Instant::now();
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        if reported.get(&account).is_some_and(|at| now - *at < QUIET) {
            return false;
        }
        if reported.len() >= REMEMBERED {
            reported.retain(|_, at| now - *at < QUIET);
        }
        if reported.len() >= REMEMBERED {
            return false;
        }
        reported.insert(account, now);
        true
    }

    /// Records that the login limit of (`tenant`, `username`) refused an
    /// attempt, if that user exists and was not reported within a minute.
    pub async fn report(&self, ctx: &AuditContext, tenant: &str, username: &str) {
        let (Ok(slug), Ok(name)) = (TenantSlug::parse(tenant), Username::parse(username)) else {
            return;
        };
        if !self.due(format!(
            "{}/{}",
            slug.as_str(),
            name.as_str().to_ascii_lowercase()
        )) {
            return;
        }
        let recorded = self
            .db
            .transaction(async |conn| {
                let Some(user) = db::users::find_by_login(conn, &slug, &name).await? else {
                    return Ok(false);
                };
                let quiet_ms = QUIET.as_millis() as i64;
                if db::audit::recently(conn, user.tenant_id, user.id, "login_locked", quiet_ms)
                    .await?
                {
                    return Ok(false);
                }
                let details = json!({});
                audit::record(
                    conn,
                    ctx,
                    user.tenant_id,
                    "login_locked",
                    Some(user.id),
                    details,
                )
                .await?;
                Ok::<_, DomainError>(true)
            })
            .await;
        match recorded {
            Ok(true) => tracing::info!(tenant, "login limit hit; recorded"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %crate::domain::error::ErrorChain(&e), "recording a login lockout failed")
            }
        }
    }
}
