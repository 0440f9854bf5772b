//! Redis: a cache of users' key records, nothing more. It may be flushed or
//! vanish at any moment; Postgres holds the truth. Values are opaque bytes to
//! this layer (the domain serialises them; they hold sealed secrets only).
//!
//! Every value is stored as `<version>|<payload>`, written by a small Lua
//! script that refuses to replace a newer version with an older one. A reader
//! that loaded a record from Postgres just before a rotation committed can
//! therefore never write the old record back over the new one.
//!
//! All commands go through one shared multiplexed connection (no pool
//! checkout per request), each bounded by a timeout. In front of it sits an
//! in-process level (`local`), kept in step across instances by a pub/sub
//! channel (`invalidation`).

pub mod breaker;
pub mod invalidation;
pub mod local;

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use crate::config::RedisSettings;
use crate::types::ids::UserId;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis failed repeatedly just now; not asked (see `breaker`).
    #[error("redis is failing; not asked for a moment (circuit open)")]
    CircuitOpen,
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
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    record_ttl: Duration,
    absent_ttl: Duration,
    timeout: Duration,
    put_script: Script,
    breaker: Arc<breaker::Breaker>,
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
    pub async fn connect(settings: &RedisSettings) -> Result<Self, CacheError> {
        let client = redis::Client::open(settings.url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.command_timeout))
            .set_response_timeout(Some(settings.command_timeout))
            .set_number_of_retries(2);
        let conn = tokio::time::timeout(
            settings.command_timeout * 4,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| CacheError::Timeout(settings.command_timeout * 4))??;
        Ok(Self {
            client,
            conn,
            prefix: settings.key_prefix.clone(),
            record_ttl: settings.record_ttl,
            absent_ttl: settings.absent_ttl,
            timeout: settings.command_timeout,
            put_script: Script::new(PUT_IF_NOT_OLDER),
            breaker: Arc::default(),
        })
    }

    /// Whether Redis answers a PING (within a few command timeouts), on a
    /// connection of its own.
    pub async fn reachable(settings: &RedisSettings) -> Result<(), CacheError> {
        let client = redis::Client::open(settings.url.as_str())?;
        let limit = settings.command_timeout * 4;
        let ping = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        tokio::time::timeout(limit, ping)
            .await
            .map_err(|_| CacheError::Timeout(limit))?
            .map(drop)
            .map_err(Into::into)
    }

    /// The Redis key of a user's record.
    pub fn key(&self, user: UserId) -> String {
        format!("{}user:{}", self.prefix, user)
    }

    /// The pub/sub channel on which changed users are announced.
    pub fn invalidation_channel(&self) -> String {
        format!("{}invalidations", self.prefix)
    }

    /// What a subscriber to the invalidation channel needs.
    pub fn subscription(&self, heartbeat: Duration) -> invalidation::Subscription {
        invalidation::Subscription {
            client: self.client.clone(),
            channel: self.invalidation_channel(),
            heartbeat,
            timeout: self.timeout,
        }
    }

    /// Tells every instance to forget `user` locally. Call only once the
    /// user's new record (or its absence) is in Redis.
    pub async fn announce(&self, user: UserId) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        self.bounded(conn.publish::<_, _, i64>(self.invalidation_channel(), user.to_string()))
            .await
            .map(drop)
    }

    pub async fn get(&self, user: UserId) -> Result<Option<Cached>, CacheError> {
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = self.bounded(conn.get(self.key(user))).await?;
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
        let mut conn = self.conn.clone();
        self.bounded(conn.del::<_, ()>(self.key(user))).await
    }

    pub async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        self.bounded(redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .is_ok()
    }

    async fn put(
        &self,
        user: UserId,
        version: i64,
        payload: &[u8],
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.put_script.key(self.key(user));
        invocation
            .arg(version)
            .arg(payload)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        self.bounded(invocation.invoke_async::<i64>(&mut conn))
            .await
            .map(drop)
    }

    async fn bounded<T>(
        &self,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        if !self.breaker.allows(Instant::now()) {
            return Err(CacheError::CircuitOpen);
        }
        let outcome = match tokio::time::timeout(self.timeout, command).await {
            Ok(result) => result.map_err(CacheError::from),
            Err(_) => Err(CacheError::Timeout(self.timeout)),
        };
        self.breaker.record(outcome.is_ok(), Instant::now());
        outcome
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
