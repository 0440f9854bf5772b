//! Boots the real application on port 0 against the real Postgres and Redis,
//! each test with a database and a Redis key prefix of its own, so tests run
//! in parallel and never depend on order.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use jsonwebtoken::{Algorithm, EncodingKey};
use redis::AsyncCommands;
use serde_json::{Value, json};
use tenant_jwt::config::{
    DatabaseSettings, HttpSettings, LimitSettings, LocalCacheSettings, MasterKeySource,
    RedisSettings, Settings, TokenSettings,
};
use tenant_jwt::domain::secrets::{MasterKey, UserSecret};
use tenant_jwt::startup::Application;
use tenant_jwt::types::ids::{Generation, UserId};
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

fn redis_url() -> String {
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
    capture_logs();
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
        },
        redis: RedisSettings {
            url: redis_url(),
            key_prefix: format!("tjt-test:{}:", Uuid::new_v4().simple()),
            record_ttl: Duration::from_secs(300),
            absent_ttl: Duration::from_secs(30),
            command_timeout: Duration::from_millis(500),
            local: LocalCacheSettings {
                capacity: 10_000,
                ttl: Duration::from_secs(30),
                heartbeat: Duration::from_millis(200),
            },
        },
        http: HttpSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: 1,
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
    }
}

/// The one service key every test instance accepts.
pub fn service_key() -> String {
    "test-service-key-0123456789abcdefghijklmnop".into()
}

/// A logged-in member of a tenant.
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
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        settings,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        handle,
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

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }

    pub async fn create_tenant(&self, slug: &str) -> Value {
        let response = self
            .client
            .post(self.url("/v1/tenants"))
            .bearer_auth(service_key())
            .json(&json!({ "slug": slug, "name": format!("Tenant {slug}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "creating tenant {slug}");
        response.json().await.unwrap()
    }

    pub async fn create_user(&self, tenant: &str, username: &str, role: &str) -> Value {
        let response = self
            .client
            .post(self.url(&format!("/v1/tenants/{tenant}/users")))
            .bearer_auth(service_key())
            .json(&json!({ "username": username, "password": PASSWORD, "role": role }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "creating user {username}");
        response.json().await.unwrap()
    }

    pub async fn login(&self, tenant: &str, username: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/v1/tenants/{tenant}/login")))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap()
    }

    /// Logs in with the standard test password and returns the access token.
    pub async fn token(&self, tenant: &str, username: &str) -> String {
        self.token_with(tenant, username, PASSWORD).await
    }

    pub async fn token_with(&self, tenant: &str, username: &str, password: &str) -> String {
        let response = self.login(tenant, username, password).await;
        assert_eq!(response.status(), 200, "login of {username}");
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A tenant with one member, logged in.
    pub async fn tenant_with_user(&self, slug: &str, username: &str) -> Member {
        let tenant = self.create_tenant(slug).await;
        let user = self.create_user(slug, username, "member").await;
        Member {
            tenant_id: tenant["id"].as_str().unwrap().to_owned(),
            id: UserId::parse(user["id"].as_str().unwrap()).unwrap(),
            token: self.token(slug, username).await,
        }
    }

    pub async fn me(&self, token: &str) -> reqwest::Response {
        self.client
            .get(self.url("/v1/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The status `/readyz` answers now.
    pub async fn readyz(&self) -> u16 {
        let ready = self.client.get(self.url("/readyz")).send().await.unwrap();
        ready.status().as_u16()
    }

    /// GET `path` as the calling service; the JSON body.
    pub async fn service_get(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .bearer_auth(service_key())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn introspect(&self, token: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/introspect"))
            .bearer_auth(service_key())
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
    }

    /// A direct connection to this instance's database.
    pub async fn db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(self.settings.database.url.as_str())
            .await
            .unwrap()
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Every Redis key of this instance.
    pub async fn redis_keys(&self) -> Vec<String> {
        let mut conn = self.redis().await;
        conn.keys(format!("{}*", self.settings.redis.key_prefix))
            .await
            .unwrap()
    }

    /// Tells every instance sharing this prefix to forget `user` in process,
    /// as the service does after each change it makes.
    pub async fn announce(&self, user: UserId) {
        let channel = format!("{}invalidations", self.settings.redis.key_prefix);
        let _: i64 = self
            .redis()
            .await
            .publish(channel, user.to_string())
            .await
            .unwrap();
    }

    /// Waits (5 s at most) until this instance's invalidation subscription
    /// is up, so that its in-process cache is in use.
    pub async fn wait_for_local_cache(&self) {
        for _ in 0..100 {
            if self.metric("tenant_jwt_invalidation_channel_up").await == 1.0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the invalidation channel never came up");
    }

    /// The value of a metric series (name with its labels, if any).
    pub async fn metric(&self, name: &str) -> f64 {
        self.counter(name)
            .await
            .unwrap_or_else(|| panic!("no metric {name}"))
    }

    /// A counter series, `None` before its first increment.
    pub async fn counter(&self, name: &str) -> Option<f64> {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    }

    /// Polls `/v1/me` (for 2 s at most) until it answers `status`.
    pub async fn me_becomes(&self, token: &str, status: u16) -> bool {
        for _ in 0..200 {
            if self.me(token).await.status() == status {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Deletes everything this instance has in Redis (its own FLUSHALL; a real
    /// FLUSHALL would pull the cache from under the tests running beside it).
    pub async fn flush_redis(&self) {
        let keys = self.redis_keys().await;
        if !keys.is_empty() {
            let mut conn = self.redis().await;
            let _: () = conn.del(keys).await.unwrap();
        }
    }

    pub fn master_key(&self) -> MasterKey {
        match &self.settings.master_key {
            MasterKeySource::Inline(encoded) => MasterKey::from_base64(encoded).unwrap(),
            MasterKeySource::File(path) => MasterKey::load_or_create_file(path).unwrap().0,
        }
    }

    /// A user's plaintext secret for a generation, opened the way the service
    /// does: from the sealed row in Postgres with the master key.
    pub async fn secret_of(&self, user: UserId, generation: i64) -> UserSecret {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use tenant_jwt::db::schema::user_secrets;
        let mut conn = self.db().await;
        let sealed: Vec<u8> = user_secrets::table
            .filter(user_secrets::user_id.eq(user.as_uuid()))
            .filter(user_secrets::generation.eq(generation))
            .select(user_secrets::ciphertext)
            .first(&mut conn)
            .await
            .unwrap();
        self.master_key()
            .unseal(user, Generation::from_db(generation), &sealed)
            .unwrap()
    }
}

/// The claims the service issues, for `user` in `tenant`, valid now.
pub fn claims_for(user: UserId, tenant: &str) -> Value {
    let now = unix_now() as i64;
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": user.to_string(), "tid": tenant,
        "role": "member", "iat": now, "nbf": now, "exp": now + 600, "jti": Uuid::new_v4().to_string(),
        "sid": Uuid::new_v4().to_string(),
    })
}

pub fn b64(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
}

/// A compact JWS with an arbitrary header and claims, signed with `secret`
/// using `algorithm` whatever the header says.
pub fn forge(header: &Value, claims: &Value, secret: &[u8], algorithm: Algorithm) -> String {
    let signing_input = format!("{}.{}", b64(header), b64(claims));
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(secret),
        algorithm,
    )
    .unwrap();
    format!("{signing_input}.{signature}")
}

/// An HS256 token exactly like the service's, for `claims`, signed with `secret`.
pub fn sign(claims: &Value, secret: &[u8], kid: &str) -> String {
    forge(
        &json!({ "typ": "JWT", "alg": "HS256", "kid": kid }),
        claims,
        secret,
        Algorithm::HS256,
    )
}

/// A TCP proxy between an instance and Redis or Postgres, to cut, freeze and
/// restore the link while the instance runs.
pub struct TcpProxy {
    pub address: std::net::SocketAddr,
    state: std::sync::Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    cut: std::sync::atomic::AtomicBool,
    frozen: std::sync::atomic::AtomicBool,
    /// Added before each chunk is passed on, in milliseconds.
    latency_ms: std::sync::atomic::AtomicU64,
    links: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
}

impl TcpProxy {
    /// A proxy to the test Redis.
    pub async fn to_redis() -> Self {
        let upstream = redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        Self::start(upstream).await
    }

    /// A proxy to the test Postgres.
    pub async fn to_postgres() -> Self {
        let base: url::Url = postgres_base_url().parse().unwrap();
        let upstream = format!(
            "{}:{}",
            base.host_str().unwrap(),
            base.port().unwrap_or(5432)
        );
        Self::start(upstream).await
    }

    /// `url` (a Postgres URL) with its host and port replaced by this proxy's.
    pub fn postgres_url(&self, url: &url::Url) -> url::Url {
        let mut proxied = url.clone();
        proxied.set_ip_host(self.address.ip()).unwrap();
        proxied.set_port(Some(self.address.port())).unwrap();
        proxied
    }

    /// The Redis URL that goes through this proxy.
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.address)
    }

    pub async fn start(upstream: String) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = std::sync::Arc::new(ProxyState::default());
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if shared.cut.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused in effect
                }
                let (upstream, state) = (upstream.clone(), shared.clone());
                let link = tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pump(client_read, server_write, &state),
                        pump(server_read, client_write, &state)
                    );
                });
                shared.links.lock().unwrap().push(link.abort_handle());
            }
        });
        Self { address, state }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.state
            .cut
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.state
            .links
            .lock()
            .unwrap()
            .drain(..)
            .for_each(|link| link.abort());
    }

    /// Keeps connections open but forwards nothing: a silent partition.
    pub fn freeze(&self) {
        self.state
            .frozen
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Passes everything on, each chunk `latency` late.
    pub fn slow(&self, latency: Duration) {
        self.state.latency_ms.store(
            latency.as_millis() as u64,
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    pub fn restore(&self) {
        use std::sync::atomic::Ordering;
        self.state.cut.store(false, Ordering::SeqCst);
        self.state.frozen.store(false, Ordering::SeqCst);
        self.state.latency_ms.store(0, Ordering::SeqCst);
    }
}

/// Copies one direction of a link, holding data back while frozen.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: &ProxyState,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while state.frozen.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let latency = state.latency_ms.load(std::sync::atomic::Ordering::SeqCst);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Everything any instance in this test process logged, as JSON lines.
static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

#[derive(Clone, Copy)]
struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        if std::env::var_os("TEST_LOG").is_some() {
            std::io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        Capture
    }
}

/// Routes every log line of the process, at debug level and for every crate,
/// into a buffer tests can search (and to stderr with `TEST_LOG=1`).
fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tenant_jwt::telemetry::init_with(
            tenant_jwt::telemetry::LogFormat::Json,
            tracing_subscriber::EnvFilter::new("debug"),
            Capture,
        );
    });
}

pub fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}
