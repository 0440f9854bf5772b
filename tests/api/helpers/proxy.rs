//! A TCP proxy in front of Redis or Postgres.

use std::time::Duration;

use tenant_jwt::types::database_url::DatabaseUrl;

use super::{postgres_base_url, redis_url};

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
    pub fn postgres_url(&self, url: &DatabaseUrl) -> DatabaseUrl {
        let mut proxied = url::Url::parse(url.as_str()).unwrap();
        proxied.set_ip_host(self.address.ip()).unwrap();
        proxied.set_port(Some(self.address.port())).unwrap();
        proxied.as_str().parse().unwrap()
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
