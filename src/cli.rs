//! The command line: every setting is a flag and an environment variable, and
//! every command calls the same domain functions as the HTTP API.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use zeroize::Zeroizing;

use crate::cache::local::LocalCache;
use crate::config::{
    DatabaseSettings, HttpSettings, LimitSettings, LocalCacheSettings, MasterKeySource,
    RedisSettings, Settings, TokenSettings,
};
use crate::db;
use crate::domain::accounts::{self, NewUser};
use crate::domain::admin::{Actor, Admin, AuditContext, UserPatch};
use crate::domain::ids::{Role, TenantName, TenantSlug, Username};
use crate::domain::key_records::KeyRecords;
use crate::domain::password::{Password, PasswordHasher};
use crate::domain::service_keys::ServiceKeys;
use crate::startup::{Application, Stores};
use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "tenant-jwt",
    version,
    about = "Per-user-secret JWT login service for multi-tenant SaaS backends"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Create the database if missing and apply pending migrations, then exit.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant.
    Create {
        /// Lowercase a-z, 0-9 and '-', 1 to 63 characters.
        slug: String,
        #[arg(long)]
        name: String,
    },
    /// Incident response: give every user of the tenant a new secret, killing
    /// every token of the tenant.
    RotateSecrets {
        /// The tenant's slug.
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user. The password is read from TENANT_JWT_USER_PASSWORD if
    /// set, else from standard input (never from a flag).
    Create {
        /// The tenant's slug.
        tenant: String,
        username: String,
        #[arg(long, default_value = "member", value_parser = ["member", "admin"])]
        role: String,
    },
    /// Give one user a new secret: every token they hold dies (after the grace
    /// period, if one is given).
    RotateSecret {
        tenant: String,
        username: String,
        /// How long tokens of the previous secret stay valid (at most 24h).
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        grace: Duration,
    },
    /// Disable a user: they cannot log in and every token they hold dies.
    Disable { tenant: String, username: String },
}

/// Every setting. All are global: they may come before or after the command.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// Postgres URL; the database is created if missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/tenant_jwt"
    )]
    pub database_url: String,
    /// Largest number of Postgres connections.
    #[arg(
        long,
        env = "TENANT_JWT_DB_POOL_SIZE",
        global = true,
        default_value_t = 16
    )]
    pub db_pool_size: usize,
    /// Longest any one use of Postgres (waiting for a connection, then the
    /// queries) may take before answering 503; the query is then cancelled.
    #[arg(long, env = "TENANT_JWT_DB_TIMEOUT", global = true, default_value = "5s", value_parser = humantime::parse_duration)]
    pub db_timeout: Duration,
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
    #[arg(long, env = "TENANT_JWT_CACHE_TTL", global = true, default_value = "1h", value_parser = humantime::parse_duration)]
    pub cache_ttl: Duration,
    /// How long "no such user" stays in Redis.
    #[arg(long, env = "TENANT_JWT_NEGATIVE_CACHE_TTL", global = true, default_value = "30s", value_parser = humantime::parse_duration)]
    pub negative_cache_ttl: Duration,
    /// Most users whose key records are kept in process (0: none).
    #[arg(
        long,
        env = "TENANT_JWT_LOCAL_CACHE_CAPACITY",
        global = true,
        default_value_t = 100_000
    )]
    pub local_cache_capacity: u64,
    /// Longest a key record is kept in process, even without an invalidation.
    #[arg(long, env = "TENANT_JWT_LOCAL_CACHE_TTL", global = true, default_value = "30s", value_parser = humantime::parse_duration)]
    pub local_cache_ttl: Duration,
    /// How often the invalidation subscription is checked; while it does not
    /// answer, the in-process cache is bypassed.
    #[arg(long, env = "TENANT_JWT_INVALIDATION_HEARTBEAT", global = true, default_value = "1s", value_parser = humantime::parse_duration)]
    pub invalidation_heartbeat: Duration,
    /// Longest wait for one Redis command before falling back to Postgres.
    #[arg(long, env = "TENANT_JWT_REDIS_TIMEOUT", global = true, default_value = "250ms", value_parser = humantime::parse_duration)]
    pub redis_timeout: Duration,
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
    #[arg(long, env = "TENANT_JWT_ACCESS_TOKEN_TTL", global = true, default_value = "15m", value_parser = humantime::parse_duration)]
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens.
    #[arg(long, env = "TENANT_JWT_REFRESH_TOKEN_TTL", global = true, default_value = "30d", value_parser = humantime::parse_duration)]
    pub refresh_token_ttl: Duration,
    /// How often expired refresh tokens and sessions are deleted.
    #[arg(long, env = "TENANT_JWT_PRUNE_INTERVAL", global = true, default_value = "10m", value_parser = humantime::parse_duration)]
    pub prune_interval: Duration,
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
    /// Clock skew tolerated on exp, nbf and iat.
    #[arg(long, env = "TENANT_JWT_CLOCK_LEEWAY", global = true, default_value = "5s", value_parser = humantime::parse_duration)]
    pub clock_leeway: Duration,
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

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl SettingsArgs {
    pub fn into_settings(self) -> anyhow::Result<Settings> {
        let database_url =
            url::Url::parse(&self.database_url).context("DATABASE_URL is not a URL")?;
        anyhow::ensure!(
            !self.access_token_ttl.is_zero(),
            "TENANT_JWT_ACCESS_TOKEN_TTL must be positive"
        );
        Ok(Settings {
            database: DatabaseSettings {
                url: database_url,
                pool_size: self.db_pool_size.max(1),
                timeout: self.db_timeout,
            },
            redis: RedisSettings {
                url: self.redis_url,
                key_prefix: self.redis_prefix,
                record_ttl: self.cache_ttl,
                absent_ttl: self.negative_cache_ttl,
                command_timeout: self.redis_timeout,
                local: LocalCacheSettings {
                    capacity: self.local_cache_capacity,
                    ttl: self.local_cache_ttl,
                    heartbeat: self.invalidation_heartbeat.max(Duration::from_millis(10)),
                },
            },
            http: HttpSettings {
                listen: self.listen,
                workers: self.workers,
            },
            tokens: TokenSettings {
                issuer: self.issuer,
                audience: self.audience,
                access_ttl: self.access_token_ttl,
                refresh_ttl: self.refresh_token_ttl,
                leeway: self.clock_leeway,
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
            prune_interval: self.prune_interval.max(Duration::from_secs(1)),
            limits: LimitSettings {
                login_per_ip: self.login_limit_per_ip,
                login_per_account_ip: self.login_limit_per_account_ip,
                login_per_account: self.login_limit_per_account,
                failed_verifications_per_ip: self.failed_verification_limit_per_ip,
                introspections_per_key: self.introspection_limit_per_key,
                trusted_proxies: self
                    .trusted_proxies
                    .split(',')
                    .map(str::trim)
                    .filter(|cidr| !cidr.is_empty())
                    .map(|cidr| {
                        cidr.parse::<ipnet::IpNet>()
                            .or_else(|_| cidr.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                            .with_context(|| {
                                format!("TENANT_JWT_TRUSTED_PROXIES: {cidr:?} is not a CIDR")
                            })
                    })
                    .collect::<anyhow::Result<_>>()?,
            },
        })
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings.into_settings()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let starting = Application::bind(settings).await?;
            if let Some(app) = starting.connect().await? {
                app.run_until_stopped().await?
            }
        }
        Command::Migrate => db::prepare(&settings.database).await?,
        Command::Tenants(TenantsCommand::Create { slug, name }) => {
            let pool = db::prepare_pool(&settings.database).await?;
            let tenant = accounts::create_tenant(
                &pool,
                TenantSlug::parse(&slug)?,
                TenantName::parse(&name)?,
            )
            .await?;
            print_json(&serde_json::json!({
                "id": tenant.id, "slug": tenant.slug, "name": tenant.name, "created_at": tenant.created_at,
            }))?;
        }
        Command::Tenants(TenantsCommand::RotateSecrets { tenant }) => {
            let rotated = operator(&settings)
                .await?
                .rotate_tenant_secrets(&OPERATOR, &tenant)
                .await?;
            print_json(&serde_json::json!({ "rotated": rotated }))?;
        }
        Command::Users(UsersCommand::Create {
            tenant,
            username,
            role,
        }) => {
            let new = NewUser {
                username: Username::parse(&username)?,
                role: Role::parse(&role)?,
                password: Password::parse_new(read_password()?.to_string())?,
            };
            let user = operator(&settings)
                .await?
                .create_user(&OPERATOR, &tenant, new)
                .await?;
            print_json(&serde_json::json!({
                "id": user.id, "username": user.username, "role": user.role,
                "disabled": user.disabled, "created_at": user.created_at,
            }))?;
        }
        Command::Users(UsersCommand::RotateSecret {
            tenant,
            username,
            grace,
        }) => {
            let admin = operator(&settings).await?;
            let user = admin.find_user_id(&OPERATOR, &tenant, &username).await?;
            let rotation = admin
                .rotate_user_secret(&OPERATOR, &tenant, user, grace)
                .await?;
            print_json(&serde_json::json!({
                "user_id": rotation.user_id,
                "generation": rotation.generation,
                "previous_generation_valid_until": rotation.previous_generation_valid_until,
            }))?;
        }
        Command::Users(UsersCommand::Disable { tenant, username }) => {
            let admin = operator(&settings).await?;
            let user = admin.find_user_id(&OPERATOR, &tenant, &username).await?;
            let patch = UserPatch {
                disabled: Some(true),
                ..UserPatch::default()
            };
            let user = admin.update_user(&OPERATOR, &tenant, user, patch).await?;
            print_json(
                &serde_json::json!({ "id": user.id, "username": user.username, "disabled": user.disabled }),
            )?;
        }
    }
    Ok(())
}

/// CLI actions are audited as the operator.
const OPERATOR: AuditContext = AuditContext {
    actor: Actor::Operator,
    request_id: None,
};

/// The administration functions, wired as `serve` wires them.
async fn operator(settings: &Settings) -> anyhow::Result<Admin> {
    let Stores {
        pool,
        master_key,
        cache,
    } = Stores::open(settings).await?;
    let metrics = crate::metrics::Metrics::new();
    // No subscriber here, so no in-process level; changes are still announced.
    let key_records = KeyRecords::new(pool.clone(), cache, LocalCache::disabled(), metrics.clone());
    Ok(Admin::new(
        pool,
        PasswordHasher::new(1, 8)?,
        master_key,
        key_records,
        metrics,
    ))
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The new user's password: `TENANT_JWT_USER_PASSWORD`, else one line of
/// standard input (without echo on a terminal).
fn read_password() -> anyhow::Result<Zeroizing<String>> {
    if let Ok(password) = std::env::var("TENANT_JWT_USER_PASSWORD") {
        return Ok(Zeroizing::new(password));
    }
    if std::io::stdin().is_terminal() {
        return Ok(Zeroizing::new(rpassword::prompt_password("Password: ")?));
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line)?;
    let trimmed = line.trim_end_matches(['\r', '\n']).to_owned();
    Ok(Zeroizing::new(trimmed))
}
