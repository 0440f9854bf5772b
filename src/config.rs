//! Typed settings, built once (from flags and environment by `cli`, or
//! directly by tests) and passed in. Nothing reads configuration globally.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::types::service_keys::ServiceKeys;

#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub http: HttpSettings,
    pub tokens: TokenSettings,
    pub master_key: MasterKeySource,
    pub service_keys: ServiceKeys,
    /// Threads that may run argon2id at once.
    pub hash_workers: usize,
    /// Password hashes that may wait for a thread; past that, 503.
    pub hash_queue: usize,
    /// How often expired refresh tokens and sessions are deleted.
    pub prune_interval: Duration,
    pub limits: LimitSettings,
    pub webhooks: WebhookSettings,
}

/// Standard Webhooks' suggested waits between attempts, in seconds: 5 s,
/// 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_RETRY_SCHEDULE: [u64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

/// Delivery of security-event webhooks (see `domain::webhooks`).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Waits between attempts after the first; past the last, a message is failed.
    pub retry_schedule: Vec<Duration>,
    /// Lifts the SSRF guard (private addresses, `http://`): local use and tests only.
    pub allow_private: bool,
    /// How often each instance looks for due messages.
    pub poll_interval: Duration,
    /// Longest one attempt may take, connection included.
    pub timeout: Duration,
    /// How long a claimed attempt is an instance's own; after it (the
    /// instance died) another takes the message over.
    pub lease: Duration,
    /// Attempts one instance makes at once.
    pub concurrency: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            retry_schedule: DEFAULT_RETRY_SCHEDULE
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            allow_private: false,
            poll_interval: Duration::from_millis(250),
            timeout: Duration::from_secs(10),
            lease: Duration::from_secs(20),
            concurrency: 32,
        }
    }
}

/// Abuse limits: login and invalid-bearer ones are shared by every instance
/// (in Redis); introspection is per instance.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Login attempts per client IP per minute.
    pub login_per_ip: u32,
    /// Login attempts per account and client IP per minute (tight).
    pub login_per_account_ip: u32,
    /// Login attempts per account per minute, from anywhere (looser).
    pub login_per_account: u32,
    /// Invalid bearer tokens per client IP per minute before 429.
    pub failed_verifications_per_ip: u32,
    /// Introspection calls per service key per second.
    pub introspections_per_key: u32,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: crate::types::database_url::DatabaseUrl,
    pub pool_size: usize,
    /// Longest any one use of Postgres (waiting for a connection, then the
    /// queries) may take before the call answers 503.
    pub timeout: Duration,
    /// `/readyz` says 503 while the primary has no synchronous standby
    /// (a failover could then undo answered changes).
    pub require_sync_replication: bool,
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    /// Prepended to every key, so several deployments (or tests) can share one Redis.
    pub key_prefix: String,
    /// How long a user's key record stays cached.
    pub record_ttl: Duration,
    /// How long "no such user" stays cached, so random `sub` values do not
    /// send every request to Postgres.
    pub absent_ttl: Duration,
    /// Longest wait for any one Redis command before falling back to Postgres
    /// (and for a pooled connection to come free).
    pub command_timeout: Duration,
    /// Most pooled connections.
    pub pool_size: usize,
    /// Longest time to open one connection.
    pub connect_timeout: Duration,
    /// The in-process level in front of Redis.
    pub local: LocalCacheSettings,
}

/// The in-process cache of key records, kept in step across instances by a
/// Redis pub/sub channel.
#[derive(Debug, Clone)]
pub struct LocalCacheSettings {
    /// Most users held; 0 turns the in-process level off.
    pub capacity: u64,
    /// Longest an entry is kept, even without an invalidation.
    pub ttl: Duration,
    /// How often the invalidation subscription is pinged; an unanswered ping
    /// flushes and bypasses the in-process level until it is back.
    pub heartbeat: Duration,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// actix-web worker threads; 0 means one per core.
    pub workers: usize,
    /// Longest time a request body may take to arrive, from the end of its
    /// head; past it, 408 and the connection is closed.
    pub body_timeout: Duration,
    /// Most open client connections of the instance; 0 derives it from the
    /// file-descriptor limit (leaving room for the pools and files).
    pub max_connections: usize,
    /// Most open connections from one client address (trusted proxies are
    /// exempt); past it a new connection is closed at once. 0: no cap.
    pub max_connections_per_ip: usize,
    /// The cookie `/v1/forward-auth` reads the token from when a request has
    /// no bearer credential; `None`: bearer only.
    pub forward_auth_cookie: Option<String>,
    /// Whether the admin console is served at `/console/`.
    pub console: bool,
}

#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
}

/// Where the master key comes from.
#[derive(Clone)]
pub enum MasterKeySource {
    /// `TENANT_JWT_MASTER_KEY`: base64 of 32 bytes.
    Inline(Zeroizing<String>),
    /// A key file, created (mode 0600) with a random key if missing.
    File(PathBuf),
}

impl std::fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterKeySource::Inline(_) => f.write_str("Inline(<redacted>)"),
            MasterKeySource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}
