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
//! to a master demoted by a failover (`READONLY`), is never used twice.

use std::time::Duration;

use deadpool_redis::{cluster, sentinel};
use redis::aio::ConnectionLike;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};

use super::topology::Topology;

pub use deadpool::managed::{PoolError, Status};

/// deadpool-redis's manager `M`, without the `PING` on every checkout.
pub struct Lean<M>(M);

impl<M: deadpool::managed::Manager> deadpool::managed::Manager for Lean<M> {
    type Type = M::Type;
    type Error = M::Error;

    async fn create(&self) -> Result<M::Type, M::Error> {
        self.0.create().await
    }

    async fn recycle(
        &self,
        _: &mut M::Type,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<M::Error> {
        Ok(())
    }
}

type Pool<M> = deadpool::managed::Pool<Lean<M>>;
type Object<M> = deadpool::managed::Object<Lean<M>>;

#[derive(Clone)]
pub enum RedisPool {
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
) -> Result<Pool<M>, redis::RedisError> {
    deadpool::managed::Pool::builder(Lean(manager))
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
        Ok(match topology.clone() {
            Topology::Standalone(info) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(settings.connect))
                    .set_response_timeout(Some(command_timeout));
                let manager = deadpool_redis::Manager::new_with_config(info, config)?;
                RedisPool::Standalone(build(manager, settings)?)
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
                RedisPool::Sentinel(build(manager, settings)?)
            }
            Topology::Cluster { nodes } => {
                RedisPool::Cluster(build(cluster::Manager::new(nodes, false)?, settings)?)
            }
        })
    }

    pub async fn get(&self) -> Result<PooledConnection, PoolError<redis::RedisError>> {
        Ok(match self {
            RedisPool::Standalone(pool) => PooledConnection::Standalone(pool.get().await?),
            RedisPool::Sentinel(pool) => PooledConnection::Sentinel(pool.get().await?),
            RedisPool::Cluster(pool) => PooledConnection::Cluster(pool.get().await?),
        })
    }

    pub fn status(&self) -> Status {
        match self {
            RedisPool::Standalone(pool) => pool.status(),
            RedisPool::Sentinel(pool) => pool.status(),
            RedisPool::Cluster(pool) => pool.status(),
        }
    }

    /// Drops every idle connection (after a failover: they may lead to the
    /// old master); connections in use are dropped when their command fails.
    pub fn drop_idle(&self) {
        match self {
            RedisPool::Standalone(pool) => drop(pool.retain(|_, _| false)),
            RedisPool::Sentinel(pool) => drop(pool.retain(|_, _| false)),
            RedisPool::Cluster(pool) => drop(pool.retain(|_, _| false)),
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
