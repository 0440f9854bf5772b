//! A deadpool-redis pool for whichever topology `REDIS_URL` names: plain
//! multiplexed connections to one server, connections to the master the
//! Sentinels name (resolved afresh for every new connection), or cluster
//! connections (which follow slots and nodes themselves).
//!
//! deadpool-redis's managers create the connections; `Lean` wraps them for
//! what a multiplexed connection allows:
//! - A checkout takes a clone of an idle connection and puts the connection
//!   straight back: concurrent commands share (pipeline on) a few
//!   connections instead of each holding one, as a blocking client must.
//!   Measured (`benches/redis`), holding a connection per command cost a
//!   third of the Redis-hit path's throughput.
//! - deadpool-redis's `recycle` sends a `PING` before every checkout, which
//!   would double the round trips; `Lean` checks two flags instead. A
//!   command that fails or times out marks its connection broken
//!   (`Checkout::discard`), and the pool closes it at its next checkout, so a
//!   broken connection, or one to a master demoted by a failover
//!   (`READONLY`), is not used again; and when the Sentinels name another
//!   master, every connection opened before is closed
//!   (`RedisPool::forget_connections`), even one to an old master that still
//!   answers (cut off from the Sentinels only, or just demoted by a manual
//!   failover: it stays a master until the Sentinels reconfigure it). A
//!   connection still opening then is dropped as it opens: its master was
//!   named before the move.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_redis::{cluster, sentinel};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};

use super::topology::Topology;

pub use deadpool::managed::{PoolError, Status};

/// Connections opened before this instant are not handed out again.
type OpenedAfter = Arc<Mutex<Option<Instant>>>;

/// A pooled connection and the flag its users raise when it fails.
pub struct Shared<C> {
    conn: C,
    broken: Arc<AtomicBool>,
    /// When opening it began: the master it leads to was named then.
    opening: Instant,
}

/// deadpool-redis's manager `M`, without the `PING` on every checkout.
pub struct Lean<M> {
    manager: M,
    opened_after: OpenedAfter,
}

impl<M> deadpool::managed::Manager for Lean<M>
where
    M: deadpool::managed::Manager,
    M::Type: Clone,
{
    type Type = Shared<M::Type>;
    type Error = M::Error;

    /// A connection whose opening began before the master moved may lead
    /// to the old one (the Sentinels named it then), however late it opened:
    /// it is dropped and another opened.
    async fn create(&self) -> Result<Self::Type, M::Error> {
        loop {
            let opening = Instant::now();
            let conn = self.manager.create().await?;
            if !self.forgotten(opening) {
                return Ok(Shared {
                    conn,
                    broken: Arc::default(),
                    opening,
                });
            }
        }
    }

    async fn recycle(
        &self,
        shared: &mut Self::Type,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<M::Error> {
        use deadpool::managed::RecycleError;
        if shared.broken.load(Ordering::Relaxed) {
            return Err(RecycleError::message("a command on it failed"));
        }
        if self.forgotten(shared.opening) {
            return Err(RecycleError::message(
                "opened before the Redis master moved",
            ));
        }
        Ok(())
    }
}

impl<M> Lean<M> {
    /// Whether a connection whose opening began at `opening` was forgotten.
    fn forgotten(&self, opening: Instant) -> bool {
        let opened_after = *self.opened_after.lock().unwrap_or_else(|e| e.into_inner());
        opened_after.is_some_and(|instant| opening < instant)
    }
}

type Pool<M> = deadpool::managed::Pool<Lean<M>>;

/// Split by thread (`crate::shards`): a multiplexed connection's driver runs
/// on the thread that opened it, and a command sent from another thread
/// costs a cross-thread wake-up each way.
#[derive(Clone)]
pub struct RedisPool {
    shards: Arc<[Pools]>,
    opened_after: OpenedAfter,
}

#[derive(Clone)]
enum Pools {
    Standalone(Pool<deadpool_redis::Manager>),
    Sentinel(Pool<sentinel::Manager>),
    Cluster(Pool<cluster::Manager>),
}

/// How the pool is sized and bounded.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub size: usize,
    /// Longest wait for an idle connection when all are in use.
    pub wait: Duration,
    /// Longest time to open a new connection (for Sentinel: ask the
    /// Sentinels, then connect to the master).
    pub connect: Duration,
}

fn build<M>(
    manager: M,
    settings: PoolSettings,
    opened_after: &OpenedAfter,
) -> Result<Pool<M>, redis::RedisError>
where
    M: deadpool::managed::Manager,
    M::Type: Clone,
{
    let manager = Lean {
        manager,
        opened_after: opened_after.clone(),
    };
    deadpool::managed::Pool::builder(manager)
        .max_size(settings.size)
        .wait_timeout(Some(settings.wait))
        .create_timeout(Some(settings.connect))
        // The connection used last: commands pile onto as few connections
        // as the load needs, where they pipeline best.
        .queue_mode(deadpool::managed::QueueMode::Lifo)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| {
            redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "redis pool",
                e.to_string(),
            ))
        })
}

/// Checks a connection out, clones it, and puts it back at once.
async fn checkout<M, C>(
    pool: &Pool<M>,
    wrap: impl FnOnce(C) -> Connection,
) -> Result<Checkout, PoolError<M::Error>>
where
    M: deadpool::managed::Manager<Type = C>,
    C: Clone,
{
    let pooled = pool.get().await?;
    Ok(Checkout {
        conn: wrap(pooled.conn.clone()),
        broken: pooled.broken.clone(),
    })
}

impl RedisPool {
    /// Builds the pool: one shard for background work and one per core
    /// (the HTTP workers), `settings.size` connections shared among them.
    /// No connection is opened until one is needed.
    pub fn new(
        topology: &Topology,
        settings: PoolSettings,
        command_timeout: Duration,
    ) -> Result<Self, redis::RedisError> {
        let shards = crate::shards::count();
        let settings = PoolSettings {
            size: crate::shards::share(settings.size, shards),
            ..settings
        };
        let opened_after = OpenedAfter::default();
        let shards = (0..shards)
            .map(|_| Self::build_shard(topology, settings, command_timeout, &opened_after))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            shards,
            opened_after,
        })
    }

    fn build_shard(
        topology: &Topology,
        settings: PoolSettings,
        command_timeout: Duration,
        opened_after: &OpenedAfter,
    ) -> Result<Pools, redis::RedisError> {
        Ok(match topology.clone() {
            Topology::Standalone(info) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(settings.connect))
                    .set_response_timeout(Some(command_timeout));
                let manager = deadpool_redis::Manager::new_with_config(info, config)?;
                Pools::Standalone(build(manager, settings, opened_after)?)
            }
            Topology::Sentinel {
                sentinels,
                master,
                node,
            } => {
                let node = sentinel::SentinelNodeConnectionInfo {
                    tls_mode: None,
                    redis_connection_info: Some(deadpool_redis::RedisConnectionInfo {
                        db: node.db(),
                        username: node.username().map(str::to_owned),
                        password: node.password().map(str::to_owned),
                        protocol: Default::default(),
                    }),
                };
                let manager = sentinel::Manager::new(
                    sentinels,
                    master,
                    Some(node),
                    sentinel::SentinelServerType::Master,
                )?;
                Pools::Sentinel(build(manager, settings, opened_after)?)
            }
            Topology::Cluster { nodes } => {
                let manager = cluster::Manager::new(nodes, false)?;
                Pools::Cluster(build(manager, settings, opened_after)?)
            }
        })
    }

    /// A connection to send commands on, from the calling thread's shard;
    /// the pooled one is free again at once (it is multiplexed).
    pub async fn get(&self) -> Result<Checkout, PoolError<redis::RedisError>> {
        match &self.shards[crate::shards::of_this_thread(self.shards.len())] {
            Pools::Standalone(pool) => checkout(pool, Connection::Single).await,
            Pools::Sentinel(pool) => checkout(pool, Connection::Single).await,
            Pools::Cluster(pool) => checkout(pool, Connection::Cluster).await,
        }
    }

    /// All shards together.
    pub fn status(&self) -> Status {
        crate::shards::total(self.shards.iter().map(|pools| match pools {
            Pools::Standalone(pool) => pool.status(),
            Pools::Sentinel(pool) => pool.status(),
            Pools::Cluster(pool) => pool.status(),
        }))
    }

    /// Closes every connection open now, in every shard: idle ones at once,
    /// those in use as they come back (after a failover: they may lead to
    /// the old master).
    pub fn forget_connections(&self) {
        *self.opened_after.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        for pools in self.shards.iter() {
            match pools {
                Pools::Standalone(pool) => drop(pool.retain(|_, _| false)),
                Pools::Sentinel(pool) => drop(pool.retain(|_, _| false)),
                Pools::Cluster(pool) => drop(pool.retain(|_, _| false)),
            }
        }
    }
}

/// A connection checked out of the pool (a clone of the pooled one).
pub struct Checkout {
    conn: Connection,
    broken: Arc<AtomicBool>,
}

pub enum Connection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Checkout {
    /// Marks the connection broken: the pool closes it instead of handing it
    /// out again.
    pub fn discard(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }
}

impl ConnectionLike for Checkout {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.conn {
            Connection::Single(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.conn {
            Connection::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            Connection::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.conn {
            Connection::Single(conn) => conn.get_db(),
            Connection::Cluster(conn) => conn.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    /// Hands out 1, 2, 3…: which connection came back is plain to see. With
    /// `moves`, the master moves while the first one is opening.
    #[derive(Default)]
    struct Numbers {
        next: AtomicU32,
        moves: Option<OpenedAfter>,
    }

    impl deadpool::managed::Manager for Numbers {
        type Type = u32;
        type Error = std::convert::Infallible;

        async fn create(&self) -> Result<u32, Self::Error> {
            let n = self.next.fetch_add(1, Ordering::SeqCst) + 1;
            if let (1, Some(opened_after)) = (n, &self.moves) {
                tokio::time::sleep(Duration::from_millis(2)).await;
                *opened_after.lock().unwrap() = Some(Instant::now());
            }
            Ok(n)
        }

        async fn recycle(
            &self,
            _: &mut u32,
            _: &deadpool::managed::Metrics,
        ) -> deadpool::managed::RecycleResult<Self::Error> {
            unreachable!("Lean never asks the inner manager to recycle")
        }
    }

    const SETTINGS: PoolSettings = PoolSettings {
        size: 2,
        wait: Duration::from_secs(1),
        connect: Duration::from_secs(1),
    };

    /// Which connection a checkout gets, as `checkout` takes it.
    async fn next(pool: &Pool<Numbers>) -> (u32, Arc<AtomicBool>) {
        let pooled = pool.get().await.unwrap();
        (pooled.conn, pooled.broken.clone())
    }

    #[tokio::test]
    async fn connections_are_shared_until_one_fails_or_the_master_moves() {
        let opened_after = OpenedAfter::default();
        let pool = build(Numbers::default(), SETTINGS, &opened_after).unwrap();
        let (first, broken) = next(&pool).await;
        assert_eq!(first, 1);
        assert_eq!(next(&pool).await.0, 1, "reused, without a round trip");

        // A command on it failed: closed at its next checkout.
        broken.store(true, Ordering::Relaxed);
        assert_eq!(next(&pool).await.0, 2, "the failed one is closed");
        assert_eq!(next(&pool).await.0, 2, "the new one is kept");

        // The master moves: everything opened before is closed.
        tokio::time::sleep(Duration::from_millis(2)).await;
        *opened_after.lock().unwrap() = Some(Instant::now());
        assert_eq!(next(&pool).await.0, 3);
        assert_eq!(next(&pool).await.0, 3);
    }

    #[tokio::test]
    async fn a_connection_opening_while_the_master_moves_is_not_used() {
        let opened_after = OpenedAfter::default();
        let numbers = Numbers {
            moves: Some(opened_after.clone()),
            ..Numbers::default()
        };
        let pool = build(numbers, SETTINGS, &opened_after).unwrap();
        let first = next(&pool).await.0;
        assert_eq!(first, 2, "the one opened across the move is dropped");
        assert_eq!(next(&pool).await.0, 2, "the next one is kept");
    }
}
