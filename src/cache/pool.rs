//! A deadpool-redis pool for whichever topology `REDIS_URL` names: plain
//! multiplexed connections to one server, connections to the master the
//! Sentinels name (resolved afresh for every new connection), or cluster
//! connections (which follow slots and nodes themselves).
//!
//! deadpool-redis's managers create the connections. Their `recycle` sends a
//! `PING` before every checkout, which would double the round trips of the
//! Redis-hit path; `Lean` keeps their `create` and hands idle connections out
//! as they are. A connection is instead dropped as soon as a command on it
//! fails or times out (`PooledConnection::discard`), so a broken one, or one
//! to a master demoted by a failover (`READONLY`), is never used twice; and
//! when the Sentinels name another master, every connection opened before
//! is closed as it comes back (`RedisPool::forget_connections`), even one to
//! an old master that still answers (cut off from the Sentinels only).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_redis::{cluster, sentinel};
use redis::aio::ConnectionLike;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};

use super::topology::Topology;

pub use deadpool::managed::{PoolError, Status};

/// Connections opened before this instant are not handed out again.
type OpenedAfter = Arc<Mutex<Option<Instant>>>;

/// deadpool-redis's manager `M`, without the `PING` on every checkout.
pub struct Lean<M> {
    manager: M,
    opened_after: OpenedAfter,
}

impl<M: deadpool::managed::Manager> deadpool::managed::Manager for Lean<M> {
    type Type = M::Type;
    type Error = M::Error;

    async fn create(&self) -> Result<M::Type, M::Error> {
        self.manager.create().await
    }

    async fn recycle(
        &self,
        _: &mut M::Type,
        metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<M::Error> {
        let opened_after = *self.opened_after.lock().unwrap_or_else(|e| e.into_inner());
        match opened_after {
            Some(instant) if metrics.created < instant => Err(
                deadpool::managed::RecycleError::message("opened before the Redis master moved"),
            ),
            _ => Ok(()),
        }
    }
}

type Pool<M> = deadpool::managed::Pool<Lean<M>>;
type Object<M> = deadpool::managed::Object<Lean<M>>;

#[derive(Clone)]
pub struct RedisPool {
    pools: Pools,
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

fn build<M: deadpool::managed::Manager>(
    manager: M,
    settings: PoolSettings,
    opened_after: &OpenedAfter,
) -> Result<Pool<M>, redis::RedisError> {
    let manager = Lean {
        manager,
        opened_after: opened_after.clone(),
    };
    deadpool::managed::Pool::builder(manager)
        .max_size(settings.size)
        .wait_timeout(Some(settings.wait))
        .create_timeout(Some(settings.connect))
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

impl RedisPool {
    /// Builds the pool; no connection is opened until one is needed.
    pub fn new(
        topology: &Topology,
        settings: PoolSettings,
        command_timeout: Duration,
    ) -> Result<Self, redis::RedisError> {
        let opened_after = OpenedAfter::default();
        let pools = match topology.clone() {
            Topology::Standalone(info) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(settings.connect))
                    .set_response_timeout(Some(command_timeout));
                let manager = deadpool_redis::Manager::new_with_config(info, config)?;
                Pools::Standalone(build(manager, settings, &opened_after)?)
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
                Pools::Sentinel(build(manager, settings, &opened_after)?)
            }
            Topology::Cluster { nodes } => {
                let manager = cluster::Manager::new(nodes, false)?;
                Pools::Cluster(build(manager, settings, &opened_after)?)
            }
        };
        Ok(Self {
            pools,
            opened_after,
        })
    }

    pub async fn get(&self) -> Result<PooledConnection, PoolError<redis::RedisError>> {
        Ok(match &self.pools {
            Pools::Standalone(pool) => PooledConnection::Standalone(pool.get().await?),
            Pools::Sentinel(pool) => PooledConnection::Sentinel(pool.get().await?),
            Pools::Cluster(pool) => PooledConnection::Cluster(pool.get().await?),
        })
    }

    pub fn status(&self) -> Status {
        match &self.pools {
            Pools::Standalone(pool) => pool.status(),
            Pools::Sentinel(pool) => pool.status(),
            Pools::Cluster(pool) => pool.status(),
        }
    }

    /// Closes every connection open now: idle ones at once, those in use as
    /// they come back (after a failover: they may lead to the old master).
    pub fn forget_connections(&self) {
        *self.opened_after.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        match &self.pools {
            Pools::Standalone(pool) => drop(pool.retain(|_, _| false)),
            Pools::Sentinel(pool) => drop(pool.retain(|_, _| false)),
            Pools::Cluster(pool) => drop(pool.retain(|_, _| false)),
        }
    }
}

/// A connection checked out of the pool; back in the pool when dropped.
pub enum PooledConnection {
    Standalone(Object<deadpool_redis::Manager>),
    Sentinel(Object<sentinel::Manager>),
    Cluster(Object<cluster::Manager>),
}

impl PooledConnection {
    /// Closes the connection instead of returning it to the pool.
    pub fn discard(self) {
        match self {
            PooledConnection::Standalone(conn) => drop(Object::take(conn)),
            PooledConnection::Sentinel(conn) => drop(Object::take(conn)),
            PooledConnection::Cluster(conn) => drop(Object::take(conn)),
        }
    }
}

impl ConnectionLike for PooledConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            PooledConnection::Standalone(conn) => conn.req_packed_command(cmd),
            PooledConnection::Sentinel(conn) => conn.req_packed_command(cmd),
            PooledConnection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            PooledConnection::Standalone(conn) => conn.req_packed_commands(cmd, offset, count),
            PooledConnection::Sentinel(conn) => conn.req_packed_commands(cmd, offset, count),
            PooledConnection::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            PooledConnection::Standalone(conn) => conn.get_db(),
            PooledConnection::Sentinel(conn) => conn.get_db(),
            PooledConnection::Cluster(conn) => conn.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Hands out 1, 2, 3…: which connection came back is plain to see.
    #[derive(Default)]
    struct Numbers(AtomicU32);

    impl deadpool::managed::Manager for Numbers {
        type Type = u32;
        type Error = std::convert::Infallible;

        async fn create(&self) -> Result<u32, Self::Error> {
            Ok(self.0.fetch_add(1, Ordering::SeqCst) + 1)
        }

        async fn recycle(
            &self,
            _: &mut u32,
            _: &deadpool::managed::Metrics,
        ) -> deadpool::managed::RecycleResult<Self::Error> {
            unreachable!("Lean never asks the inner manager to recycle")
        }
    }

    #[tokio::test]
    async fn connections_come_back_as_they_are_until_forgotten_even_those_in_use() {
        let opened_after = OpenedAfter::default();
        let settings = PoolSettings {
            size: 2,
            wait: Duration::from_secs(1),
            connect: Duration::from_secs(1),
        };
        let pool = build(Numbers::default(), settings, &opened_after).unwrap();
        let first = pool.get().await.unwrap();
        assert_eq!(*first, 1);
        drop(first);
        let in_use = pool.get().await.unwrap();
        assert_eq!(*in_use, 1, "reused without a round trip");

        // The master moves while the connection is in use.
        tokio::time::sleep(Duration::from_millis(2)).await;
        *opened_after.lock().unwrap() = Some(Instant::now());
        drop(in_use);
        assert_eq!(*pool.get().await.unwrap(), 2, "the old one is closed");
        assert_eq!(*pool.get().await.unwrap(), 2, "the new one is kept");
    }
}
