//! Who a service call comes from: a root key (`TENANT_JWT_SERVICE_KEYS`,
//! every scope, every tenant) or a stored service credential (its scopes,
//! its tenant if it has one). `authenticate` runs on every service call:
//!
//! 1. The key's SHA-256 is compared in constant time with every root key.
//! 2. A key without the stored shape (`tjs_` and 43 base64url characters) is
//!    refused there: garbage never reaches Postgres.
//! 3. The in-process cache answers by digest (a digest of 256 random bits
//!    is safe to look up by: nothing about the key can be learnt from the
//!    timing), for known credentials and for keys known not to exist.
//! 4. Otherwise `load` reads Postgres once and remembers the answer.
//!
//! Every use checks expiry against the clock. The cache is trusted only
//! while it is known current: `watch` reads the revision counter in Postgres
//! (moved by a trigger on every change that authentication must see) four
//! times a second, forgets everything when it moved, and the cache goes
//! unused if Postgres could not be read for a second. So a revoked
//! credential fails on every instance within a second, whatever crashed:
//! Postgres carries the change, not a message that could be lost.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::db::{self, Db};
use crate::domain::audit::Actor;
use crate::domain::error::DomainError;
use crate::metrics::{Area, Metrics};
use crate::types::ids::CredentialId;
use crate::types::scopes::Scopes;
use crate::types::service_keys::{KeyDigest, ServiceKeyId, ServiceKeys, is_stored_key};

/// How often each instance reads the revision counter.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(250);
/// How long the cache stays trusted after the counter was last read.
const TRUSTED_FOR: Duration = Duration::from_secs(1);
/// Most keys remembered; past it the ones known not to exist are dropped.
const MAX_ENTRIES: usize = 10_000;
/// Why a key that is no credential was refused, for logs and metrics.
pub const UNKNOWN: &str = "unknown_service_key";
/// `last_used_at` is written at most this often per credential.
const USE_NOTED_EVERY_SECONDS: i64 = 60;

/// An authenticated service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceCaller {
    /// Short id of the key presented: for logs and per-key rate limits.
    pub key: ServiceKeyId,
    /// `Actor::Service` (root key) or `Actor::Credential`.
    pub actor: Actor,
}

/// What `authenticate` could tell without waiting.
#[derive(Debug)]
pub enum Authentication {
    Known(ServiceCaller),
    /// Refused; the reason is for logs and metrics only.
    Refused(&'static str),
    /// Neither a root key nor shaped like a stored one (an access token,
    /// say, where a tenant admin may use one).
    NotAServiceKey,
    /// A stored key the cache cannot answer for: `load` it.
    Unsure(KeyDigest),
}

/// A stored credential as cached.
#[derive(Debug)]
struct Grant {
    /// Always an `Actor::Credential`.
    caller: ServiceCaller,
    /// Unix seconds of the last use this instance asked to note.
    noted_at: AtomicI64,
}

/// Service calls refused, credentials read from Postgres, and whether the
/// cached credentials are known current.
pub struct CredentialMetrics {
    refusals: prometheus::IntCounterVec,
    loads: prometheus::IntCounterVec,
    fresh: prometheus::IntGauge,
}

impl Area for CredentialMetrics {
    fn register(metrics: &Metrics) -> Self {
        Self {
            refusals: metrics.counter_vec(
                "service_auth_refusals_total",
                "Service calls refused by reason: unknown_service_key, expired_credential, insufficient_scope",
                &["reason"],
            ),
            loads: metrics.counter_vec(
                "service_credential_loads_total",
                "Stored service credentials looked up in Postgres (not cached in process), by result: found, not_found",
                &["result"],
            ),
            fresh: metrics.gauge(
                "service_credential_cache_fresh",
                "1 while this instance's cached service credentials are known current (Postgres read within the last second)",
            ),
        }
    }
}

/// Service authentication, shared by every worker.
#[derive(Clone)]
pub struct Credentials {
    db: Db,
    root: ServiceKeys,
    cache: Arc<Cache>,
    /// Credentials used since `watch` last wrote `last_used_at`.
    used: Arc<Mutex<HashSet<CredentialId>>>,
    metrics: Arc<CredentialMetrics>,
}

impl Credentials {
    pub fn new(db: Db, root: ServiceKeys, metrics: Metrics) -> Self {
        Self {
            db,
            root,
            cache: Arc::new(Cache::new()),
            used: Arc::default(),
            metrics: metrics.area(),
        }
    }

    /// Steps 1 to 3 above: no I/O.
    pub fn authenticate(&self, key: &str) -> Authentication {
        let digest = KeyDigest::of(key);
        if let Some(id) = self.root.authenticate(&digest) {
            return Authentication::Known(ServiceCaller {
                key: id,
                actor: Actor::Service(id),
            });
        }
        if !is_stored_key(key) {
            return Authentication::NotAServiceKey;
        }
        match self.cache.get(&digest) {
            Some(Some(grant)) => match self.admit(&grant) {
                Ok(caller) => Authentication::Known(caller),
                Err(reason) => Authentication::Refused(reason),
            },
            Some(None) => Authentication::Refused(UNKNOWN),
            None => Authentication::Unsure(digest),
        }
    }

    /// Step 4: reads the credential from Postgres and remembers what it
    /// found (or that there is none). `Err(reason)` when refused.
    pub async fn load(
        &self,
        digest: KeyDigest,
    ) -> Result<Result<ServiceCaller, &'static str>, DomainError> {
        let epoch = self.cache.epoch();
        let row = self
            .db
            .query(async |conn| db::credentials::find_live_by_digest(conn, digest.as_bytes()).await)
            .await?;
        let result = if row.is_some() { "found" } else { "not_found" };
        self.metrics.loads.with_label_values(&[result]).inc();
        let grant = row.map(|row| {
            Arc::new(Grant {
                caller: ServiceCaller {
                    key: digest.id(),
                    actor: Actor::Credential {
                        id: row.id,
                        tenant: row.tenant_id,
                        scopes: Scopes::from_stored(&row.scopes),
                        expires_at: row.expires_at,
                    },
                },
                noted_at: AtomicI64::new(0),
            })
        });
        self.cache.put(digest, grant.clone(), epoch);
        Ok(match grant {
            Some(grant) => self.admit(&grant),
            None => Err(UNKNOWN),
        })
    }

    /// Counts a refused service call by reason (`authenticate`'s, `load`'s,
    /// or a scope the caller lacks).
    pub fn refused(&self, reason: &'static str) {
        self.metrics.refusals.with_label_values(&[reason]).inc();
    }

    /// Forgets every cached credential: after a change on this instance, so
    /// it holds here at once (others see the counter move).
    pub fn forget(&self) {
        self.cache.clear();
    }

    /// Reads the revision counter every `WATCH_INTERVAL`, forgetting the
    /// cache when it moved, and writes the `last_used_at` of credentials used
    /// since. Runs until cancelled.
    pub async fn watch(self) {
        let mut ticks = tokio::time::interval(WATCH_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = None;
        let mut failing = false;
        loop {
            ticks.tick().await;
            let read = self
                .db
                .query(async |conn| db::credentials::revision(conn).await)
                .await;
            match read {
                Ok(revision) => {
                    if seen != Some(revision) {
                        self.cache.clear();
                        seen = Some(revision);
                    }
                    self.cache.trust_for(TRUSTED_FOR);
                    if failing {
                        tracing::info!("service credentials current again");
                        failing = false;
                    }
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(
                        error = %e,
                        "cannot read service credential changes; stored credentials are read from Postgres at each use until it answers"
                    );
                }
                Err(_) => {}
            }
            self.metrics.fresh.set(i64::from(self.cache.trusted()));
            self.note_uses().await;
        }
    }

    fn admit(&self, grant: &Grant) -> Result<ServiceCaller, &'static str> {
        let Actor::Credential { id, expires_at, .. } = grant.caller.actor else {
            return Ok(grant.caller);
        };
        let now = Utc::now();
        if expires_at.is_some_and(|at| at <= now) {
            return Err("expired_credential");
        }
        let noted = grant.noted_at.load(Ordering::Relaxed);
        if now.timestamp() - noted >= USE_NOTED_EVERY_SECONDS
            && grant
                .noted_at
                .compare_exchange(noted, now.timestamp(), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.used
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id);
        }
        Ok(grant.caller)
    }

    async fn note_uses(&self) {
        let ids: Vec<CredentialId> = {
            let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
            used.drain().collect()
        };
        if ids.is_empty() {
            return;
        }
        let noted = self
            .db
            .query(async |conn| db::credentials::note_used(conn, &ids).await)
            .await;
        if let Err(e) = noted {
            tracing::debug!(error = %e, "could not note service credential use");
        }
    }
}

/// Keys seen, by digest: `Some` a live credential, `None` no such key.
/// Entries are only used while the cache is trusted, and an entry read
/// from Postgres before a `clear` is not kept (`epoch`), so a lookup that
/// raced a revocation cannot bring the credential back.
struct Cache {
    entries: RwLock<HashMap<KeyDigest, Option<Arc<Grant>>>>,
    /// Moves at every `clear`.
    epoch: AtomicU64,
    /// Milliseconds after `origin` until which entries may be used.
    trusted_until: AtomicU64,
    origin: Instant,
}

impl Cache {
    fn new() -> Self {
        Self {
            entries: RwLock::default(),
            epoch: AtomicU64::new(0),
            trusted_until: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn trusted(&self) -> bool {
        self.now_ms() < self.trusted_until.load(Ordering::Acquire)
    }

    fn trust_for(&self, period: Duration) {
        let until = self.now_ms() + u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
        self.trusted_until.store(until, Ordering::Release);
    }

    /// `None` when the cache cannot answer: not trusted, or not seen.
    fn get(&self, digest: &KeyDigest) -> Option<Option<Arc<Grant>>> {
        if !self.trusted() {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.get(digest).cloned()
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Remembers what a lookup begun at `epoch` found, unless the cache was
    /// cleared since.
    fn put(&self, digest: KeyDigest, grant: Option<Arc<Grant>>, epoch: u64) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, grant| grant.is_some());
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(digest, grant);
    }

    fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ids::TenantId;

    fn grant() -> Option<Arc<Grant>> {
        let digest = KeyDigest::of("tjs_x");
        Some(Arc::new(Grant {
            caller: ServiceCaller {
                key: digest.id(),
                actor: Actor::Credential {
                    id: CredentialId::generate(),
                    tenant: Some(TenantId::generate()),
                    scopes: Scopes::TENANT,
                    expires_at: None,
                },
            },
            noted_at: AtomicI64::new(0),
        }))
    }

    #[test]
    fn an_untrusted_cache_answers_nothing() {
        let cache = Cache::new();
        let digest = KeyDigest::of("a");
        cache.put(digest, grant(), cache.epoch());
        assert!(cache.get(&digest).is_none(), "never read: not trusted");
        cache.trust_for(Duration::from_secs(60));
        assert!(cache.get(&digest).unwrap().is_some());
        cache.trust_for(Duration::ZERO);
        assert!(cache.get(&digest).is_none(), "trust lapsed");
    }

    #[test]
    fn a_lookup_that_raced_a_clear_is_not_kept() {
        let cache = Cache::new();
        cache.trust_for(Duration::from_secs(60));
        let digest = KeyDigest::of("a");
        let begun = cache.epoch();
        cache.clear();
        cache.put(digest, grant(), begun);
        assert!(cache.get(&digest).is_none());
        cache.put(digest, None, cache.epoch());
        assert!(
            matches!(cache.get(&digest), Some(None)),
            "remembered as unknown"
        );
    }

    #[test]
    fn unknown_keys_give_way_first() {
        let cache = Cache::new();
        cache.trust_for(Duration::from_secs(60));
        let known = KeyDigest::of("known");
        cache.put(known, grant(), cache.epoch());
        for n in 0..MAX_ENTRIES + 5 {
            cache.put(KeyDigest::of(&n.to_string()), None, cache.epoch());
        }
        let entries = cache.entries.read().unwrap().len();
        assert!(entries <= MAX_ENTRIES, "{entries}");
        assert!(cache.get(&known).unwrap().is_some());
    }
}
