//! Every setting as a flag and an environment variable, and how they become
//! the typed `Settings`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use zeroize::Zeroizing;

use super::database::DatabaseArgs;
use crate::config::{
    HttpSettings, LimitSettings, LocalCacheSettings, MasterKeySource, RedisSettings, Settings,
    TokenSettings, WebhookSettings,
};
use crate::domain::webhooks::schedule;
use crate::telemetry::LogFormat;
use crate::types::service_keys::ServiceKeys;

/// Every setting. All are global: they may come before or after the command.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Redis URL (the key-record cache).
    #[arg(
        long,
        env = "REDIS_URL",
        global = true,
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// Prefix of every Redis key.
    #[arg(
        long,
        env = "TENANT_JWT_REDIS_PREFIX",
        global = true,
        default_value = "tenant-jwt:"
    )]
    pub redis_prefix: String,
    /// How long a user's key record stays in Redis.
    #[arg(
        long,
        env = "TENANT_JWT_CACHE_TTL",
        global = true,
        default_value = "1h"
    )]
    pub cache_ttl: humantime::Duration,
    /// How long "no such user" stays in Redis.
    #[arg(
        long,
        env = "TENANT_JWT_NEGATIVE_CACHE_TTL",
        global = true,
        default_value = "30s"
    )]
    pub negative_cache_ttl: humantime::Duration,
    /// Most users whose key records are kept in process (0: none).
    #[arg(
        long,
        env = "TENANT_JWT_LOCAL_CACHE_CAPACITY",
        global = true,
        default_value_t = 100_000
    )]
    pub local_cache_capacity: u64,
    /// Longest a key record is kept in process, even without an invalidation.
    #[arg(
        long,
        env = "TENANT_JWT_LOCAL_CACHE_TTL",
        global = true,
        default_value = "30s"
    )]
    pub local_cache_ttl: humantime::Duration,
    /// How often the invalidation subscription is checked; while it does not
    /// answer, the in-process cache is bypassed.
    #[arg(
        long,
        env = "TENANT_JWT_INVALIDATION_HEARTBEAT",
        global = true,
        default_value = "1s"
    )]
    pub invalidation_heartbeat: humantime::Duration,
    /// Longest wait for one Redis command before falling back to Postgres.
    #[arg(
        long,
        env = "TENANT_JWT_REDIS_TIMEOUT",
        global = true,
        default_value = "250ms"
    )]
    pub redis_timeout: humantime::Duration,
    /// Most Redis connections the instance keeps open (per cluster node for
    /// a cluster), shared out among the pool's shards like the Postgres
    /// pool's; a command waits at most TENANT_JWT_REDIS_TIMEOUT for one.
    #[arg(
        long,
        env = "TENANT_JWT_REDIS_POOL_SIZE",
        global = true,
        default_value_t = 16
    )]
    pub redis_pool_size: usize,
    /// Longest time to open a Redis connection (under Sentinel: ask the
    /// Sentinels, then reach the master).
    #[arg(
        long,
        env = "TENANT_JWT_REDIS_CONNECT_TIMEOUT",
        global = true,
        default_value = "1s"
    )]
    pub redis_connect_timeout: humantime::Duration,
    /// Address to listen on.
    #[arg(
        long,
        env = "TENANT_JWT_LISTEN",
        global = true,
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
    /// HTTP worker threads; 0 for one per core.
    #[arg(long, env = "TENANT_JWT_WORKERS", global = true, default_value_t = 0)]
    pub workers: usize,
    /// Longest a request body may take to arrive; then 408 and the connection closes.
    #[arg(
        long,
        env = "TENANT_JWT_BODY_TIMEOUT",
        global = true,
        default_value = "5s"
    )]
    pub body_timeout: humantime::Duration,
    /// Most open client connections; 0 derives it from the file-descriptor limit.
    #[arg(
        long,
        env = "TENANT_JWT_MAX_CONNECTIONS",
        global = true,
        default_value_t = 0
    )]
    pub max_connections: usize,
    /// Most open connections from one client address (trusted proxies exempt); 0: no cap.
    #[arg(
        long,
        env = "TENANT_JWT_MAX_CONNECTIONS_PER_IP",
        global = true,
        default_value_t = 256
    )]
    pub max_connections_per_ip: usize,
    /// Cookie /v1/forward-auth reads the access token from when there is no bearer.
    #[arg(long, env = "TENANT_JWT_FORWARD_AUTH_COOKIE", global = true)]
    pub forward_auth_cookie: Option<String>,
    /// Serve the admin console at /console/ (false: every /console path is 404).
    #[arg(long, env = "TENANT_JWT_CONSOLE", global = true, default_value_t = true, action = clap::ArgAction::Set)]
    pub console: bool,
    /// Master key: base64 of 32 random bytes (`openssl rand -base64 32`).
    #[arg(
        long,
        env = "TENANT_JWT_MASTER_KEY",
        global = true,
        hide_env_values = true
    )]
    pub master_key: Option<String>,
    /// Key file used when no master key is set; created (mode 0600) on first start.
    #[arg(
        long,
        env = "TENANT_JWT_MASTER_KEY_FILE",
        global = true,
        default_value = ".tenant-jwt/master.key"
    )]
    pub master_key_file: PathBuf,
    /// Comma-separated service keys (each at least 32 characters) for
    /// introspection and administration.
    #[arg(
        long,
        env = "TENANT_JWT_SERVICE_KEYS",
        global = true,
        hide_env_values = true,
        default_value = ""
    )]
    pub service_keys: String,
    /// `iss` of issued tokens, required on verification.
    #[arg(
        long,
        env = "TENANT_JWT_ISSUER",
        global = true,
        default_value = "tenant-jwt"
    )]
    pub issuer: String,
    /// `aud` of issued tokens, required on verification.
    #[arg(
        long,
        env = "TENANT_JWT_AUDIENCE",
        global = true,
        default_value = "tenant-jwt"
    )]
    pub audience: String,
    /// Lifetime of access tokens.
    #[arg(
        long,
        env = "TENANT_JWT_ACCESS_TOKEN_TTL",
        global = true,
        default_value = "15m"
    )]
    pub access_token_ttl: humantime::Duration,
    /// Lifetime of refresh tokens.
    #[arg(
        long,
        env = "TENANT_JWT_REFRESH_TOKEN_TTL",
        global = true,
        default_value = "30d"
    )]
    pub refresh_token_ttl: humantime::Duration,
    /// How often expired refresh tokens and sessions are deleted.
    #[arg(
        long,
        env = "TENANT_JWT_PRUNE_INTERVAL",
        global = true,
        default_value = "10m"
    )]
    pub prune_interval: humantime::Duration,
    /// Login attempts per client IP per minute.
    #[arg(
        long,
        env = "TENANT_JWT_LOGIN_LIMIT_PER_IP",
        global = true,
        default_value_t = 60
    )]
    pub login_limit_per_ip: u32,
    /// Login attempts per account and client IP per minute.
    #[arg(
        long,
        env = "TENANT_JWT_LOGIN_LIMIT_PER_ACCOUNT_IP",
        global = true,
        default_value_t = 10
    )]
    pub login_limit_per_account_ip: u32,
    /// Login attempts per account per minute, from any address.
    #[arg(
        long,
        env = "TENANT_JWT_LOGIN_LIMIT_PER_ACCOUNT",
        global = true,
        default_value_t = 60
    )]
    pub login_limit_per_account: u32,
    /// Invalid bearer tokens per client IP per minute before 429.
    #[arg(
        long,
        env = "TENANT_JWT_FAILED_VERIFICATION_LIMIT_PER_IP",
        global = true,
        default_value_t = 60
    )]
    pub failed_verification_limit_per_ip: u32,
    /// Introspection calls per service key per second.
    #[arg(
        long,
        env = "TENANT_JWT_INTROSPECTION_LIMIT_PER_KEY",
        global = true,
        default_value_t = 10_000
    )]
    pub introspection_limit_per_key: u32,
    /// Comma-separated CIDRs of proxies whose X-Forwarded-For is believed.
    #[arg(
        long,
        env = "TENANT_JWT_TRUSTED_PROXIES",
        global = true,
        default_value = ""
    )]
    pub trusted_proxies: String,
    /// Seconds between webhook attempts after the first, comma-separated;
    /// after the last a message is failed.
    #[arg(
        long,
        env = "TENANT_JWT_WEBHOOK_RETRY_SCHEDULE",
        global = true,
        default_value = "5,300,1800,7200,18000,36000,36000"
    )]
    pub webhook_retry_schedule: String,
    /// Lets webhook endpoints be http:// and reach private, loopback and
    /// link-local addresses. For local use and tests only: keep it off in
    /// production (it opens the service to SSRF).
    #[arg(
        long,
        env = "TENANT_JWT_WEBHOOK_ALLOW_PRIVATE",
        global = true,
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub webhook_allow_private: bool,
    /// How often each instance looks for webhook messages to send.
    #[arg(
        long,
        env = "TENANT_JWT_WEBHOOK_POLL_INTERVAL",
        global = true,
        default_value = "250ms"
    )]
    pub webhook_poll_interval: humantime::Duration,
    /// Clock skew tolerated on exp, nbf and iat.
    #[arg(
        long,
        env = "TENANT_JWT_CLOCK_LEEWAY",
        global = true,
        default_value = "5s"
    )]
    pub clock_leeway: humantime::Duration,
    /// Password hashes computed at once; 0 for one per core.
    #[arg(
        long,
        env = "TENANT_JWT_HASH_WORKERS",
        global = true,
        default_value_t = 0
    )]
    pub hash_workers: usize,
    /// Password hashes that may wait for a free thread; past that, 503 with Retry-After.
    #[arg(
        long,
        env = "TENANT_JWT_HASH_QUEUE",
        global = true,
        default_value_t = 64
    )]
    pub hash_queue: usize,
    /// Log format; the level comes from RUST_LOG (default info).
    #[arg(
        long,
        env = "TENANT_JWT_LOG_FORMAT",
        global = true,
        value_enum,
        default_value = "human"
    )]
    pub log_format: LogFormat,
}

/// Comma-separated CIDRs; a bare address is a /32 or /128.
fn parse_cidrs(list: &str) -> anyhow::Result<Vec<ipnet::IpNet>> {
    list.split(',')
        .map(str::trim)
        .filter(|cidr| !cidr.is_empty())
        .map(|cidr| {
            cidr.parse::<ipnet::IpNet>()
                .or_else(|_| cidr.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .with_context(|| format!("TENANT_JWT_TRUSTED_PROXIES: {cidr:?} is not a CIDR"))
        })
        .collect()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl SettingsArgs {
    pub fn into_settings(self) -> anyhow::Result<Settings> {
        anyhow::ensure!(
            !self.access_token_ttl.is_zero(),
            "TENANT_JWT_ACCESS_TOKEN_TTL must be positive"
        );
        anyhow::ensure!(
            !self.redis_prefix.contains(['{', '}']),
            "TENANT_JWT_REDIS_PREFIX must not contain braces: keys use the user id as their cluster hash tag"
        );
        Ok(Settings {
            database: self.database.into_settings()?,
            redis: RedisSettings {
                url: self.redis_url,
                key_prefix: self.redis_prefix,
                record_ttl: self.cache_ttl.into(),
                absent_ttl: self.negative_cache_ttl.into(),
                command_timeout: self.redis_timeout.into(),
                pool_size: self.redis_pool_size.max(1),
                connect_timeout: self.redis_connect_timeout.into(),
                local: LocalCacheSettings {
                    capacity: self.local_cache_capacity,
                    ttl: self.local_cache_ttl.into(),
                    heartbeat: Duration::from(self.invalidation_heartbeat)
                        .max(Duration::from_millis(10)),
                },
            },
            http: HttpSettings {
                listen: self.listen,
                workers: self.workers,
                body_timeout: self.body_timeout.into(),
                max_connections: self.max_connections,
                max_connections_per_ip: self.max_connections_per_ip,
                forward_auth_cookie: self.forward_auth_cookie.filter(|name| !name.is_empty()),
                console: self.console,
            },
            tokens: TokenSettings {
                issuer: self.issuer,
                audience: self.audience,
                access_ttl: self.access_token_ttl.into(),
                refresh_ttl: self.refresh_token_ttl.into(),
                leeway: self.clock_leeway.into(),
            },
            master_key: match self.master_key.filter(|k| !k.trim().is_empty()) {
                Some(key) => MasterKeySource::Inline(Zeroizing::new(key)),
                None => MasterKeySource::File(self.master_key_file),
            },
            service_keys: ServiceKeys::parse(&self.service_keys)
                .context("TENANT_JWT_SERVICE_KEYS is invalid")?,
            hash_workers: if self.hash_workers == 0 {
                cores()
            } else {
                self.hash_workers
            },
            hash_queue: self.hash_queue,
            prune_interval: Duration::from(self.prune_interval).max(Duration::from_secs(1)),
            limits: LimitSettings {
                login_per_ip: self.login_limit_per_ip,
                login_per_account_ip: self.login_limit_per_account_ip,
                login_per_account: self.login_limit_per_account,
                failed_verifications_per_ip: self.failed_verification_limit_per_ip,
                introspections_per_key: self.introspection_limit_per_key,
                trusted_proxies: parse_cidrs(&self.trusted_proxies)?,
            },
            webhooks: WebhookSettings {
                retry_schedule: schedule::parse_schedule(&self.webhook_retry_schedule)
                    .map_err(|e| anyhow::anyhow!("TENANT_JWT_WEBHOOK_RETRY_SCHEDULE: {e}"))?,
                allow_private: self.webhook_allow_private,
                poll_interval: Duration::from(self.webhook_poll_interval)
                    .max(Duration::from_millis(10)),
                ..WebhookSettings::default()
            },
        })
    }
}
