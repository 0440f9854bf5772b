//! Redis servers of the tests' own, started with `redis-server` on free
//! ports and stopped when dropped: a master with a replica and a Sentinel,
//! and a 3-master cluster made with `redis-cli --cluster create`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::AsyncCommands;

/// The name the Sentinel knows the master by.
pub const MASTER_NAME: &str = "tjmaster";

/// One `redis-server` process; killed when dropped.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

/// A port nothing listens on now, with its cluster bus port (+10000) free too.
fn free_port() -> u16 {
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisServer {
    /// Starts `redis-server` with `args` (after the port and the defaults:
    /// nothing on disk but cluster state) and waits until it answers.
    pub async fn start(args: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut server = RedisServer {
            port: free_port(),
            dir: tmp.path().to_owned(),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
            _tmp: Some(tmp),
        };
        server.spawn().await;
        server
    }

    /// A Sentinel watching `master`, quick to fail it over.
    pub async fn sentinel(master: u16) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = tmp.path().join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 1\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 3000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir = tmp.path().display()
            ),
        )
        .unwrap();
        let mut server = RedisServer {
            port,
            dir: tmp.path().to_owned(),
            args: vec![config.display().to_string(), "--sentinel".into()],
            child: None,
            _tmp: Some(tmp),
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let mut command = Command::new("redis-server");
        if self.args.first().is_some_and(|a| a.ends_with(".conf")) {
            command.args(&self.args); // a Sentinel: its config file holds the port
        } else {
            command
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&self.dir)
                .args(&self.args);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut conn) = self.connect().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub async fn connect(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(format!("redis://{}", self.address()))?
            .get_multiplexed_async_connection()
            .await
    }

    /// SIGKILL: no goodbye to clients, replicas or the cluster.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory (a cluster node keeps
    /// its identity through `nodes.conf`).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// `INFO <section>` as text. An error is returned, not a panic: it is
    /// polled while the server is being reconfigured, and a Sentinel that
    /// turns it into a replica drops its clients (`CLIENT KILL`).
    pub async fn info(&self, section: &str) -> redis::RedisResult<String> {
        let mut conn = self.connect().await?;
        redis::cmd("INFO").arg(section).query_async(&mut conn).await
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits (`limit` at most) until `check` holds.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within {limit:?}: {what}");
}

/// A master, one replica and a Sentinel (quorum 1, down after 1 s).
pub struct SentinelSet {
    pub master: RedisServer,
    pub replica: RedisServer,
    pub sentinel: RedisServer,
}

impl SentinelSet {
    pub async fn start() -> Self {
        let master = RedisServer::start(&[]).await;
        Self::around(master).await
    }

    /// `master`, a replica of it and a Sentinel.
    async fn around(master: RedisServer) -> Self {
        let upstream = master.port.to_string();
        let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &upstream]).await;
        let sentinel = RedisServer::sentinel(master.port).await;
        let set = SentinelSet {
            master,
            replica,
            sentinel,
        };
        // A failover needs the replica in sync and known to the Sentinel.
        eventually(Duration::from_secs(20), "replica in sync", || async {
            set.replica
                .info("replication")
                .await
                .is_ok_and(|info| info.contains("master_link_status:up"))
        })
        .await;
        eventually(
            Duration::from_secs(20),
            "Sentinel knows the replica",
            || async {
                let mut conn = set.sentinel.connect().await.unwrap();
                let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
                    .arg("REPLICAS")
                    .arg(MASTER_NAME)
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                !replicas.is_empty()
            },
        )
        .await;
        set
    }

    pub fn url(&self) -> String {
        format!("redis+sentinel://{}/{MASTER_NAME}", self.sentinel.address())
    }

    /// Subscribers to the instances' invalidation channels on `server`.
    pub async fn subscribers(&self, server: &RedisServer) -> u64 {
        let Ok(mut conn) = server.connect().await else {
            return 0;
        };
        let channels: Vec<String> = redis::cmd("PUBSUB")
            .arg("CHANNELS")
            .arg("*invalidations")
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        let mut total = 0;
        for channel in channels {
            let (_, n): (String, u64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&channel)
                .query_async(&mut conn)
                .await
                .unwrap();
            total += n;
        }
        total
    }

    /// `SENTINEL FAILOVER`: promotes a replica while the master stays up
    /// (retried while the Sentinel finds no good replica yet).
    pub async fn failover(&self) {
        let before = self.master_port().await;
        eventually(Duration::from_secs(20), "a manual failover", || async {
            let mut conn = self.sentinel.connect().await.unwrap();
            let _ = redis::cmd("SENTINEL")
                .arg("FAILOVER")
                .arg(MASTER_NAME)
                .query_async::<String>(&mut conn)
                .await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            self.master_port().await != before
        })
        .await;
    }

    /// The master now asks for a password, and the Sentinel's connections to
    /// it are closed: the Sentinel reconnects, gets `NOAUTH` to its `PING`s and
    /// takes the master for down, while every other client stays connected.
    pub async fn cut_off_master_from_sentinel(&self) {
        let mut conn = self.master.connect().await.unwrap();
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("requirepass")
            .arg(uuid::Uuid::new_v4().to_string())
            .query_async(&mut conn)
            .await
            .unwrap();
        let clients: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut conn)
            .await
            .unwrap();
        for line in clients.lines().filter(|l| l.contains(" name=sentinel-")) {
            let id = line
                .split(' ')
                .find_map(|field| field.strip_prefix("id="))
                .unwrap();
            let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query_async(&mut conn)
                .await;
        }
    }

    /// The port the Sentinel names as master now.
    pub async fn master_port(&self) -> Option<u16> {
        let mut conn = self.sentinel.connect().await.ok()?;
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER_NAME)
            .query_async(&mut conn)
            .await
            .ok()?;
        Some(port)
    }
}

/// Three masters, no replicas, each owning a third of the slots.
pub struct ClusterSet {
    pub nodes: Vec<RedisServer>,
}

impl ClusterSet {
    /// `full_coverage`: whether the cluster refuses every command while a
    /// slot has no live owner (Redis's default) or serves the slots it has.
    pub async fn start(full_coverage: bool) -> Self {
        let coverage = if full_coverage { "yes" } else { "no" };
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(
                RedisServer::start(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-require-full-coverage",
                    coverage,
                ])
                .await,
            );
        }
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(nodes.iter().map(RedisServer::address))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli is installed");
        assert!(status.success(), "redis-cli --cluster create failed");
        let set = ClusterSet { nodes };
        set.wait_until_ok().await;
        set
    }

    /// Waits until every live node reports the cluster ok.
    pub async fn wait_until_ok(&self) {
        eventually(Duration::from_secs(30), "cluster_state:ok", || async {
            for node in &self.nodes {
                let Ok(mut conn) = node.connect().await else {
                    return false;
                };
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                if !info.contains("cluster_state:ok") {
                    return false;
                }
            }
            true
        })
        .await;
    }

    /// `redis+cluster://` with the nodes in the order given.
    pub fn url_listing(&self, order: &[usize]) -> String {
        let nodes: Vec<String> = order.iter().map(|&i| self.nodes[i].address()).collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// The index of the node that owns `key`'s slot.
    pub async fn owner_of(&self, key: &str) -> usize {
        let mut conn = self.nodes[0].connect().await.unwrap();
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        // Each range: [start, end, [host, port, id], replicas…].
        let ranges: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await
            .unwrap();
        let port = ranges
            .into_iter()
            .find_map(|range| {
                let start: u16 = redis::from_redis_value(range[0].clone()).unwrap();
                let end: u16 = redis::from_redis_value(range[1].clone()).unwrap();
                let master: Vec<redis::Value> = redis::from_redis_value(range[2].clone()).unwrap();
                let port: u16 = redis::from_redis_value(master[1].clone()).unwrap();
                (start..=end).contains(&slot).then_some(port)
            })
            .expect("every slot has an owner");
        self.nodes.iter().position(|n| n.port == port).unwrap()
    }

    /// Keys on each node whose name starts with `prefix`.
    pub async fn keys_per_node(&self, prefix: &str) -> Vec<usize> {
        let mut counts = Vec::new();
        for node in &self.nodes {
            let mut conn = node.connect().await.unwrap();
            let keys: Vec<String> = conn.keys(format!("{prefix}*")).await.unwrap();
            counts.push(keys.len());
        }
        counts
    }

    /// Subscribers to `channel` on each node (0 for a node that is down).
    pub async fn subscribers_per_node(&self, channel: &str) -> Vec<u64> {
        let mut counts = Vec::new();
        for node in &self.nodes {
            let count = match node.connect().await {
                Ok(mut conn) => redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(channel)
                    .query_async::<(String, u64)>(&mut conn)
                    .await
                    .map(|(_, n)| n)
                    .unwrap_or(0),
                Err(_) => 0,
            };
            counts.push(count);
        }
        counts
    }

    pub async fn flush_all(&self) {
        for node in &self.nodes {
            let mut conn = node.connect().await.unwrap();
            let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
        }
    }
}
