//! What every handler can reach.

use std::time::Duration;

use super::limits::Limits;
use crate::cache::RecordCache;
use crate::db::Db;
use crate::domain::accounts::console::ConsoleSessions;
use crate::domain::accounts::lockouts::Lockouts;
use crate::domain::accounts::login::Accounts;
use crate::domain::accounts::sessions::Sessions;
use crate::domain::admin::Admin;
use crate::domain::authz::checks::Authz;
use crate::domain::authz::roles::Roles;
use crate::domain::credentials::Credentials;
use crate::domain::tokens::verify::Verifier;
use crate::domain::webhooks::endpoints::Webhooks;
use crate::metrics::Metrics;

/// What every handler can reach. Built once at start-up, shared by all workers.
pub struct AppState {
    pub db: Db,
    pub cache: RecordCache,
    pub accounts: Accounts,
    pub verifier: Verifier,
    pub admin: Admin,
    /// Roles and who holds them.
    pub roles: Roles,
    /// Checks against each tenant's current roles.
    pub authz: Authz,
    /// A tenant's webhook endpoints and what they were sent.
    pub webhooks: Webhooks,
    pub sessions: Sessions,
    /// Records an account's login limit being hit (`login.locked`).
    pub lockouts: Lockouts,
    pub limits: Limits,
    pub metrics: Metrics,
    /// Who service calls come from (root keys and stored credentials).
    pub credentials: Credentials,
    /// The cookie `/v1/forward-auth` reads a token from when there is no
    /// bearer credential; `None`: bearer only.
    pub forward_auth_cookie: Option<String>,
    /// The admin console's sessions; `None`: the console is off
    /// (`TENANT_JWT_CONSOLE=false`).
    pub console: Option<ConsoleSessions>,
    /// How long `/readyz` waits for each dependency.
    pub readiness_timeout: Duration,
}
