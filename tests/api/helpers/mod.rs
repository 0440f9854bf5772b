//! Boots the real application on port 0 against the real Postgres and Redis,
//! each test with a database and a Redis key prefix of its own, so tests run
//! in parallel and never depend on order. Beside it: the client calls tests
//! make (`client`), forged tokens (`tokens`), a TCP proxy to cut and freeze
//! links (`proxy`) and the captured logs (`logs`).

pub mod binary;
pub mod browser;
mod client;
mod logs;
pub mod postgres_servers;
mod proxy;
pub mod redis_servers;
mod tokens;

pub use logs::captured_logs;
pub use proxy::TcpProxy;
pub use tokens::{b64, claims_for, forge, sign};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenant_jwt::config::{
    DatabaseSettings, HttpSettings, LimitSettings, LocalCacheSettings, MasterKeySource,
    RedisSettings, Settings, TokenSettings, WebhookSettings,
};
use tenant_jwt::domain::keys::secrets::MasterKey;
use tenant_jwt::startup::Application;
use tenant_jwt::types::ids::UserId;
use tenant_jwt::types::service_keys::ServiceKeys;
use tokio::sync::OnceCell;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";
pub const ISSUER: &str = "tenant-jwt-test";
pub const AUDIENCE: &str = "tenant-jwt-test-api";

/// Databases made by this suite: `tjt_<unix seconds>_<random>`.
const TEST_DB_PREFIX: &str = "tjt_";
/// Test databases older than this (left by earlier runs) are dropped.
const STALE_AFTER_SECS: u64 = 2 * 3600;

fn postgres_base_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Settings for a fresh, isolated instance.
pub fn test_settings() -> Settings {
    logs::capture();
    let database = format!(
        "{TEST_DB_PREFIX}{}_{}",
        unix_now(),
        &Uuid::new_v4().simple().to_string()[..12]
    );
    Settings {
        database: DatabaseSettings {
            url: format!("{}/{database}", postgres_base_url())
                .parse()
                .unwrap(),
            pool_size: 4,
            timeout: Duration::from_secs(5),
            require_sync_replication: false,
        },
        redis: RedisSettings {
            url: redis_url(),
            key_prefix: format!("tjt-test:{}:", Uuid::new_v4().simple()),
            record_ttl: Duration::from_secs(300),
            absent_ttl: Duration::from_secs(30),
            command_timeout: Duration::from_millis(500),
            pool_size: 16,
            connect_timeout: Duration::from_secs(1),
            local: LocalCacheSettings {
                capacity: 10_000,
                ttl: Duration::from_secs(30),
                heartbeat: Duration::from_millis(200),
            },
        },
        http: HttpSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: 1,
            body_timeout: Duration::from_secs(5),
            max_connections: 0,
            max_connections_per_ip: 256,
            forward_auth_cookie: None,
            console: true,
        },
        tokens: TokenSettings {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(30 * 86_400),
            leeway: Duration::from_secs(5),
        },
        master_key: MasterKeySource::Inline(MasterKey::generate_base64().unwrap()),
        service_keys: ServiceKeys::parse(&service_key()).unwrap(),
        hash_workers: 2,
        hash_queue: 64,
        prune_interval: Duration::from_secs(3600),
        // Generous: the tests of the limits set their own.
        limits: LimitSettings {
            login_per_ip: 10_000,
            login_per_account_ip: 10_000,
            login_per_account: 10_000,
            failed_verifications_per_ip: 10_000,
            introspections_per_key: 10_000,
            trusted_proxies: Vec::new(),
        },
        // Receivers are on loopback; the tests of the schedule set their own.
        webhooks: WebhookSettings {
            allow_private: true,
            retry_schedule: vec![Duration::from_secs(1); 2],
            poll_interval: Duration::from_millis(100),
            ..WebhookSettings::default()
        },
    }
}

/// The one service key every test instance accepts.
pub fn service_key() -> String {
    "test-service-key-0123456789abcdefghijklmnop".into()
}

/// A logged-in member of a tenant.
#[derive(Clone)]
pub struct Member {
    pub tenant_id: String,
    pub id: UserId,
    pub token: String,
}

pub struct TestApp {
    pub address: String,
    pub settings: Settings,
    pub client: reqwest::Client,
    handle: ServerHandle,
    /// `run_until_stopped`, running.
    running: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_settings()).await
}

pub async fn spawn_app_with(settings: Settings) -> TestApp {
    drop_stale_test_databases().await;
    let app = Application::build(settings.clone())
        .await
        .expect("application builds");
    serve(app, settings)
}

/// Serves a built application in the background.
pub fn serve(app: Application, settings: Settings) -> TestApp {
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let running = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        settings,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        handle,
        running,
    }
}

impl TestApp {
    /// Stops the server and waits until the application has shut down
    /// (background tasks ended, pool closed).
    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.running.await.unwrap().unwrap();
    }
}

/// Drops databases earlier runs of this suite left behind; once per run.
async fn drop_stale_test_databases() {
    static ONCE: OnceCell<()> = OnceCell::const_new();
    ONCE.get_or_init(|| async {
        use diesel::QueryableByName;
        use diesel_async::RunQueryDsl;
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = diesel::sql_types::Text)]
            datname: String,
        }
        let Ok(mut conn) =
            AsyncPgConnection::establish(&format!("{}/postgres", postgres_base_url())).await
        else {
            return;
        };
        let names: Vec<Name> =
            diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'tjt\\_%'")
                .load(&mut conn)
                .await
                .unwrap_or_default();
        let cutoff = unix_now().saturating_sub(STALE_AFTER_SECS);
        for Name { datname } in names {
            let created = datname
                .split('_')
                .nth(1)
                .and_then(|s| s.parse::<u64>().ok());
            if created.is_some_and(|t| t < cutoff) {
                let _ = diesel::sql_query(format!(
                    "DROP DATABASE IF EXISTS \"{datname}\" WITH (FORCE)"
                ))
                .execute(&mut conn)
                .await;
            }
        }
    })
    .await;
}
