//! The in-process level in front of Redis: a bounded cache with a short TTL,
//! kept honest by the invalidation channel (`cache::invalidation`).
//!
//! It is only used while the channel is known to be up ("live"). While it is
//! down every lookup bypasses it, and going down or coming back up flushes it,
//! so a revocation never waits for a TTL.
//!
//! The race it must win: a load that read Redis (or Postgres) before an
//! invalidation must not insert its stale value after it. Every invalidation
//! bumps an epoch under a write lock; a load takes a [`Ticket`] (the epoch)
//! before reading and inserts under the read lock only if the epoch is
//! unchanged. Hits take no lock of ours (the map's shard lock only).
//!
//! The map is `quick_cache` (S3-FIFO eviction), chosen over moka for its
//! small overhead per entry: an entry here is the user id, its deadline and
//! the value, in a slot of a table, with no per-entry allocation or
//! background maintenance. A TTL is the deadline kept beside the value.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::types::ids::UserId;

/// The epoch a load started in; only valid for inserting what that load read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// A value and the instant it stops being served.
#[derive(Clone)]
struct Entry<V> {
    until: Instant,
    value: V,
}

/// Cheap to clone; clones share the entries.
#[derive(Clone)]
pub struct LocalCache<V> {
    inner: Arc<Inner<V>>,
}

struct Inner<V> {
    /// `None` when the local level is disabled (capacity 0).
    entries: Option<quick_cache::sync::Cache<UserId, Entry<V>>>,
    ttl: Duration,
    epoch: RwLock<u64>,
    live: AtomicBool,
}

impl<V: Clone + Send + Sync + 'static> LocalCache<V> {
    /// At most `capacity` entries, each for at most `ttl`. Starts not live:
    /// nothing is served from it until the invalidation channel is up.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        let entries = (capacity > 0 && !ttl.is_zero()).then(|| {
            quick_cache::sync::Cache::new(usize::try_from(capacity).unwrap_or(usize::MAX))
        });
        Self {
            inner: Arc::new(Inner {
                entries,
                ttl,
                epoch: RwLock::new(0),
                live: AtomicBool::new(false),
            }),
        }
    }

    /// A local level that is never used (for commands without a subscriber).
    pub fn disabled() -> Self {
        Self::new(0, Duration::ZERO)
    }

    fn entries(&self) -> Option<&quick_cache::sync::Cache<UserId, Entry<V>>> {
        self.inner
            .entries
            .as_ref()
            .filter(|_| self.inner.live.load(Ordering::Acquire))
    }

    pub fn get(&self, user: UserId) -> Option<V> {
        // An expired entry is a miss; the load that follows replaces it.
        let entry = self.entries()?.get(&user)?;
        (Instant::now() < entry.until).then_some(entry.value)
    }

    /// Taken before reading the lower levels; `None` while not live.
    pub fn ticket(&self) -> Option<Ticket> {
        self.entries()?;
        Some(Ticket(*self.read_epoch()))
    }

    /// Inserts what a load read, unless an invalidation (or a change of
    /// liveness) happened since its ticket was taken.
    pub fn insert(&self, ticket: Ticket, user: UserId, value: V) {
        let epoch = self.read_epoch();
        if *epoch == ticket.0
            && let Some(entries) = self.entries()
        {
            let until = Instant::now() + self.inner.ttl;
            entries.insert(user, Entry { until, value });
        }
    }

    /// Forgets one user and refuses every insert of a load begun before.
    pub fn invalidate(&self, user: UserId) {
        let mut epoch = self.write_epoch();
        *epoch += 1;
        if let Some(entries) = &self.inner.entries {
            entries.remove(&user);
        }
    }

    /// Whether the invalidation channel is up (whatever the capacity).
    pub fn is_live(&self) -> bool {
        self.inner.live.load(Ordering::Acquire)
    }

    /// The invalidation channel came up (`true`) or went down (`false`):
    /// either way everything cached so far may have missed a message.
    pub fn set_live(&self, live: bool) {
        let _epoch = self.flush();
        self.inner.live.store(live, Ordering::Release);
    }

    /// Forgets everyone and refuses every insert of a load begun before.
    pub fn clear(&self) {
        drop(self.flush());
    }

    /// Clears under the epoch's write lock and hands the lock back, so that
    /// `set_live` changes liveness before any load can take a ticket.
    fn flush(&self) -> std::sync::RwLockWriteGuard<'_, u64> {
        let mut epoch = self.write_epoch();
        *epoch += 1;
        if let Some(entries) = &self.inner.entries {
            entries.clear();
        }
        epoch
    }

    // A poisoned lock only means a panic elsewhere while holding it; the
    // epoch itself is a plain counter and still meaningful.
    fn read_epoch(&self) -> std::sync::RwLockReadGuard<'_, u64> {
        self.inner.epoch.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_epoch(&self) -> std::sync::RwLockWriteGuard<'_, u64> {
        self.inner.epoch.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_cache() -> LocalCache<u32> {
        let cache = LocalCache::new(100, Duration::from_secs(60));
        cache.set_live(true);
        cache
    }

    #[test]
    fn serves_nothing_until_live_and_nothing_while_down() {
        let user = UserId::generate();
        let cache = LocalCache::new(100, Duration::from_secs(60));
        assert!(cache.ticket().is_none());
        cache.set_live(true);
        let ticket = cache.ticket().unwrap();
        cache.insert(ticket, user, 1);
        assert_eq!(cache.get(user), Some(1));
        cache.set_live(false);
        assert_eq!(cache.get(user), None);
        assert!(cache.ticket().is_none());
        cache.set_live(true);
        assert_eq!(cache.get(user), None, "coming back up flushes");
    }

    #[test]
    fn a_load_begun_before_an_invalidation_does_not_insert() {
        let (user, other) = (UserId::generate(), UserId::generate());
        let cache = live_cache();
        let stale = cache.ticket().unwrap();
        cache.invalidate(other);
        cache.insert(stale, user, 1);
        assert_eq!(cache.get(user), None);
        let fresh = cache.ticket().unwrap();
        cache.insert(fresh, user, 2);
        assert_eq!(cache.get(user), Some(2));
        cache.invalidate(user);
        assert_eq!(cache.get(user), None);
    }

    #[test]
    fn a_load_begun_before_a_reconnect_does_not_insert() {
        let user = UserId::generate();
        let cache = live_cache();
        let ticket = cache.ticket().unwrap();
        cache.set_live(false);
        cache.set_live(true);
        cache.insert(ticket, user, 1);
        assert_eq!(cache.get(user), None);
    }

    #[test]
    fn capacity_zero_disables_it() {
        let user = UserId::generate();
        let cache = LocalCache::<u32>::new(0, Duration::from_secs(60));
        cache.set_live(true);
        assert!(cache.ticket().is_none());
        assert_eq!(cache.get(user), None);
    }

    #[test]
    fn stays_within_its_bound() {
        let cache = LocalCache::new(1_000, Duration::from_secs(60));
        cache.set_live(true);
        for n in 0..10_000 {
            let ticket = cache.ticket().unwrap();
            cache.insert(ticket, UserId::generate(), n);
        }
        let entries = cache.inner.entries.as_ref().unwrap();
        assert!(entries.len() <= 1_000, "{} entries", entries.len());
    }

    #[test]
    fn an_entry_is_not_served_past_its_ttl() {
        let user = UserId::generate();
        let cache = LocalCache::new(100, Duration::from_millis(50));
        cache.set_live(true);
        let ticket = cache.ticket().unwrap();
        cache.insert(ticket, user, 1);
        assert_eq!(cache.get(user), Some(1));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(cache.get(user), None);
    }
}
