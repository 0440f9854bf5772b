//! Redis: a cache of users' key records (and, in `budgets`, the shared rate
//! limits), nothing that must last. It may be flushed or
//! vanish at any moment; Postgres holds the truth. Values are opaque bytes to
//! this layer (the domain serialises them; they hold sealed secrets only).
//!
//! Every value is stored as `<version>|<payload>`, written by a small Lua
//! script that refuses to replace a newer version with an older one. A reader
//! that loaded a record from Postgres just before a rotation committed can
//! therefore never write the old record back over the new one.
//!
//! Commands go through a deadpool-redis pool (`pool`) on whichever topology
//! `REDIS_URL` names (`topology`): one server, a Sentinel-watched master, or
//! a Cluster. Every key of a user carries the user id as its hash tag, so a
//! user's keys share one cluster slot and every script touches one slot.
//! Each command is bounded by a timeout. In front of Redis sits an
//! in-process level (`local`), kept in step across instances by a pub/sub
//! channel (`invalidation`).

pub mod breaker;
pub mod budgets;
pub mod invalidation;
pub mod local;
pub mod metrics;
pub mod pool;
pub mod topology;

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{FromRedisValue, Script};

use self::pool::{PoolError, PoolSettings, RedisPool};
use self::topology::{Topology, UrlError};
use crate::config::RedisSettings;
use crate::telemetry::otel;
use crate::types::ids::UserId;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis pool: {0}")]
    Pool(#[from] PoolError<redis::RedisError>),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis failed repeatedly just now; not asked (see `breaker`).
    #[error("redis is failing; not asked for a moment (circuit open)")]
    CircuitOpen,
    /// An announcement reached no subscriber, not even this instance's own:
    /// the connection led to a server other than the one it listens on.
    #[error("the announcement reached no subscriber; the connection led elsewhere")]
    Unheard,
}

/// What the cache holds for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// A serialised key record.
    Record(Vec<u8>),
    /// Known not to exist (a negative entry).
    Absent,
}

#[derive(Clone)]
pub struct RecordCache {
    topology: Topology,
    pool: RedisPool,
    prefix: String,
    record_ttl: Duration,
    absent_ttl: Duration,
    timeout: Duration,
    put_script: Script,
    breaker: Arc<breaker::Breaker>,
    /// Told each time the invalidation subscription is (re)established.
    subscribed: Arc<tokio::sync::Notify>,
}

const PUT_IF_NOT_OLDER: &str = r#"
local current = redis.call('GET', KEYS[1])
if current then
  local version = tonumber(string.match(current, '^(%d+)|'))
  if version and version > tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
return 1
"#;

impl RecordCache {
    /// Reads the topology from the URL and builds the pool; connections
    /// open as they are needed. Fails only on settings (a malformed URL).
    pub fn new(settings: &RedisSettings) -> Result<Self, CacheError> {
        let topology = Topology::parse(&settings.url)?;
        let pool = RedisPool::new(
            &topology,
            PoolSettings {
                size: settings.pool_size,
                wait: settings.command_timeout,
                connect: settings.connect_timeout,
            },
            settings.command_timeout,
        )?;
        Ok(Self {
            topology,
            pool,
            prefix: settings.key_prefix.clone(),
            record_ttl: settings.record_ttl,
            absent_ttl: settings.absent_ttl,
            timeout: settings.command_timeout,
            put_script: Script::new(PUT_IF_NOT_OLDER),
            breaker: Arc::default(),
            subscribed: Arc::default(),
        })
    }

    /// Whether Redis answers a PING, on a pool of its own (start-up).
    pub async fn reachable(settings: &RedisSettings) -> Result<(), CacheError> {
        Self::new(settings)?.check().await
    }

    /// A PING, with the reason it failed.
    pub async fn check(&self) -> Result<(), CacheError> {
        self.query::<String>(&redis::cmd("PING")).await.map(drop)
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn pool(&self) -> &RedisPool {
        &self.pool
    }

    /// The Redis key of a user's record. The user id is the hash tag: all
    /// of one user's keys live in one cluster slot.
    pub fn key(&self, user: UserId) -> String {
        format!("{}{{{}}}:record", self.prefix, user)
    }

    /// The pub/sub channel on which changed users are announced.
    pub fn invalidation_channel(&self) -> String {
        format!("{}invalidations", self.prefix)
    }

    /// Notified (one permit) each time the invalidation subscription is
    /// (re)established: after a Redis reconnection or a failover it follows.
    pub fn subscriptions(&self) -> Arc<tokio::sync::Notify> {
        self.subscribed.clone()
    }

    /// What a subscriber to the invalidation channel needs.
    pub fn subscription(&self, heartbeat: Duration) -> invalidation::Subscription {
        invalidation::Subscription {
            topology: self.topology.clone(),
            pool: self.pool.clone(),
            subscribed: self.subscribed.clone(),
            channel: self.invalidation_channel(),
            heartbeat,
            timeout: self.timeout,
        }
    }

    /// Tells every instance to forget `user` locally. Call only once the
    /// user's new record (or its absence) is in Redis.
    ///
    /// `listening`: this instance's own subscription is up, so on one server
    /// or under Sentinel the announcement must reach at least that
    /// subscriber. If it reaches none, the pooled connection leads to a server
    /// the subscribers are not on (a master demoted but still answering, a
    /// host name now pointing elsewhere): what was just written there is not
    /// what the instances read, so every pooled connection is closed and the
    /// change reported unpublished (the outbox's drain publishes it again).
    /// On a cluster a `PUBLISH` counts only the node's own subscribers.
    pub async fn announce(&self, user: UserId, listening: bool) -> Result<(), CacheError> {
        let mut publish = redis::cmd("PUBLISH");
        publish
            .arg(self.invalidation_channel())
            .arg(user.to_string());
        let heard: i64 = self.query(&publish).await?;
        if heard == 0 && listening && !matches!(self.topology, Topology::Cluster { .. }) {
            self.pool.forget_connections();
            return Err(CacheError::Unheard);
        }
        Ok(())
    }

    pub async fn get(&self, user: UserId) -> Result<Option<Cached>, CacheError> {
        let raw: Option<Vec<u8>> = self.query(redis::cmd("GET").arg(self.key(user))).await?;
        Ok(raw.and_then(|value| decode(&value)))
    }

    /// Caches a record at `version`, unless a newer version is cached.
    pub async fn put_record(
        &self,
        user: UserId,
        version: i64,
        payload: &[u8],
    ) -> Result<(), CacheError> {
        self.put(user, version, payload, self.record_ttl).await
    }

    /// Caches "no such user". `version` 0 from readers; a deletion passes the
    /// deleted record's next version so no stale read can resurrect it.
    pub async fn put_absent(&self, user: UserId, version: i64) -> Result<(), CacheError> {
        self.put(user, version, b"", self.absent_ttl).await
    }

    pub async fn remove(&self, user: UserId) -> Result<(), CacheError> {
        self.query(redis::cmd("DEL").arg(self.key(user))).await
    }

    pub async fn ping(&self) -> bool {
        self.check().await.is_ok()
    }

    async fn put(
        &self,
        user: UserId,
        version: i64,
        payload: &[u8],
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let mut invocation = self.put_script.key(self.key(user));
        invocation
            .arg(version)
            .arg(payload)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        self.run::<i64>(Command::Script(&invocation))
            .await
            .map(drop)
    }

    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, CacheError> {
        self.run(Command::Plain(cmd)).await
    }

    /// Runs `command` on a pooled connection, within the timeout, unless
    /// the breaker is open. A connection whose command failed or timed out
    /// is closed, not returned to the pool.
    async fn run<T: FromRedisValue>(&self, command: Command<'_>) -> Result<T, CacheError> {
        use tracing::Instrument;
        if !otel::traced() {
            return self.send(command).await;
        }
        let span = tracing::info_span!(
            target: otel::TARGET,
            "redis",
            otel.name = command.name(),
            otel.kind = "client",
            db.system.name = "redis",
            db.operation.name = command.name(),
            otel.status_code = tracing::field::Empty,
        );
        let outcome = self.send(command).instrument(span.clone()).await;
        if outcome.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        outcome
    }

    async fn send<T: FromRedisValue>(&self, command: Command<'_>) -> Result<T, CacheError> {
        if !self.breaker.allows(Instant::now()) {
            return Err(CacheError::CircuitOpen);
        }
        let outcome = match self.pool.get().await {
            Ok(mut conn) => {
                let sent = tokio::time::timeout(self.timeout, async {
                    match command {
                        Command::Plain(cmd) => cmd.query_async(&mut conn).await,
                        Command::Script(script) => script.invoke_async(&mut conn).await,
                    }
                })
                .await;
                match sent {
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(e)) => {
                        conn.discard();
                        Err(CacheError::Redis(e))
                    }
                    Err(_) => {
                        conn.discard();
                        Err(CacheError::Timeout(self.timeout))
                    }
                }
            }
            Err(e) => Err(CacheError::Pool(e)),
        };
        self.breaker.record(outcome.is_ok(), Instant::now());
        outcome
    }
}

enum Command<'a> {
    Plain(&'a redis::Cmd),
    Script(&'a redis::ScriptInvocation<'a>),
}

impl Command<'_> {
    /// The command's name only (for a span): never its keys or values.
    fn name(&self) -> &'static str {
        let Command::Plain(cmd) = self else {
            return "EVALSHA";
        };
        let Some(redis::Arg::Simple(name)) = cmd.args_iter().next() else {
            return "OTHER";
        };
        // The commands this module sends; anything else is not named.
        const KNOWN: &[&str] = &[
            "GET", "SET", "DEL", "PUBLISH", "PING", "EXISTS", "EXPIRE", "MGET", "UNLINK", "SCAN",
            "INFO", "EVAL", "EVALSHA", "SCRIPT",
        ];
        KNOWN
            .iter()
            .find(|known| known.as_bytes().eq_ignore_ascii_case(name))
            .copied()
            .unwrap_or("OTHER")
    }
}

/// Parses `<version>|<payload>`; an empty payload is a negative entry.
/// Anything else is treated as a miss.
fn decode(value: &[u8]) -> Option<Cached> {
    let bar = value.iter().position(|&b| b == b'|')?;
    let (version, payload) = (&value[..bar], &value[bar + 1..]);
    if version.is_empty() || !version.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(if payload.is_empty() {
        Cached::Absent
    } else {
        Cached::Record(payload.to_vec())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_records_and_negative_entries() {
        assert_eq!(
            decode(b"3|{\"a\":1}"),
            Some(Cached::Record(b"{\"a\":1}".to_vec()))
        );
        assert_eq!(decode(b"0|"), Some(Cached::Absent));
        assert_eq!(decode(b"garbage"), None);
        assert_eq!(decode(b"|x"), None);
        assert_eq!(decode(b"x1|y"), None);
    }
}
