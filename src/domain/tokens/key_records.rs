//! A user's key record: everything verification needs about one user, loaded
//! with one cache lookup. It is stored with sealed secrets only; the master
//! key opens them in process, once per record held there. The in-process
//! level first, then Redis, then Postgres on a miss (written back); "no such
//! user" is cached too, briefly.

use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::cache::local::LocalCache;
use crate::cache::{CacheError, Cached, RecordCache};
use crate::domain::error::DomainError;
use crate::domain::keys::secrets::{KeyId, MasterKey, SecretError, UserSecret};
use diesel_async::AsyncPgConnection;

use crate::db::{self, Db};
use crate::domain::tokens::metrics::TokenMetrics;
use crate::metrics::Metrics;
use crate::types::ids::{Generation, Role, SessionId, TenantId, TenantSlug, UserId, Username};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    /// `users.record_version` when this was read; newer always wins in the cache.
    pub version: i64,
    pub user_id: UserId,
    pub tenant_id: TenantId,
    pub tenant_slug: TenantSlug,
    pub username: Username,
    pub role: Role,
    pub disabled: bool,
    /// Usable generations, newest first (almost always one: held inline).
    pub generations: SmallVec<[SealedGeneration; 1]>,
    /// Revoked sessions whose access tokens may not have expired yet.
    #[serde(default)]
    pub revoked_sessions: Vec<SessionId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedGeneration {
    pub generation: Generation,
    #[serde(with = "base64_bytes")]
    pub sealed: Vec<u8>,
    /// `None` for the current generation; for a retired one, when its grace ends.
    pub valid_until: Option<DateTime<Utc>>,
    /// The secret once opened, so that a record kept in process is opened
    /// once rather than on every verification. Never serialised (Redis
    /// holds sealed secrets only); zeroed on drop.
    #[serde(skip)]
    opened: OnceLock<UserSecret>,
}

impl SealedGeneration {
    pub fn new(
        generation: Generation,
        sealed: Vec<u8>,
        valid_until: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            generation,
            sealed,
            valid_until,
            opened: OnceLock::new(),
        }
    }

    /// The secret in the clear, opened under `master_key` the first time.
    pub fn open(&self, master_key: &MasterKey, user: UserId) -> Result<&UserSecret, SecretError> {
        if let Some(secret) = self.opened.get() {
            return Ok(secret);
        }
        let secret = master_key.unseal(user, self.generation, &self.sealed)?;
        Ok(self.opened.get_or_init(|| secret))
    }
}

impl KeyRecord {
    /// The record as process memory holds it: every generation opened once,
    /// and its ciphertext dropped (the largest part of a record, of no use
    /// once opened). Such a record is never serialised (refused), so it
    /// cannot reach Redis. A generation that does not open keeps its
    /// ciphertext, so a token signed with it fails as it would have.
    pub fn opened(mut self, master_key: &MasterKey) -> Self {
        let user = self.user_id;
        for generation in &mut self.generations {
            if generation.open(master_key, user).is_ok() {
                generation.sealed = Vec::new();
            }
        }
        self
    }

    /// The generation new tokens are signed with.
    pub fn current(&self) -> Option<&SealedGeneration> {
        self.generations.iter().find(|g| g.valid_until.is_none())
    }

    /// The generation `generation`, if tokens signed with it are still accepted at `now`.
    pub fn usable(&self, generation: Generation, now: DateTime<Utc>) -> Option<&SealedGeneration> {
        self.generations
            .iter()
            .find(|g| g.generation == generation)
            .filter(|g| g.valid_until.is_none_or(|until| until > now))
    }
}

mod base64_bytes {
    use super::*;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if bytes.is_empty() {
            return Err(serde::ser::Error::custom(
                "a record held in process has no ciphertexts; serialise the stored one",
            ));
        }
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let encoded = <&str>::deserialize(d)?;
        STANDARD.decode(encoded).map_err(serde::de::Error::custom)
    }
}

/// A committed change whose new record could not be put into Redis.
#[derive(Debug, thiserror::Error)]
#[error("the change is saved but the cache could not be updated; retry")]
struct Unpublished(#[source] CacheError);

/// What the in-process level holds for a user: the record, or its absence.
pub type LocalRecords = LocalCache<Option<Arc<KeyRecord>>>;

/// Loads key records through the cache.
#[derive(Clone)]
pub struct KeyRecords {
    db: Db,
    cache: RecordCache,
    local: LocalRecords,
    /// Tells records sealed under a retired master key from current ones.
    master_key: Arc<MasterKey>,
    metrics: Arc<TokenMetrics>,
}

impl KeyRecords {
    pub fn new(
        db: Db,
        cache: RecordCache,
        local: LocalRecords,
        master_key: Arc<MasterKey>,
        metrics: Metrics,
    ) -> Self {
        Self {
            db,
            cache,
            local,
            master_key,
            metrics: metrics.area(),
        }
    }

    /// The user's record, or `None` if there is no such user. A Redis failure
    /// is logged and answered from Postgres; only Postgres failing is an error.
    pub async fn load(&self, user: UserId) -> Result<Option<Arc<KeyRecord>>, DomainError> {
        match self.in_process(user) {
            Some(known) => Ok(known),
            None => self.load_missed(user).await,
        }
    }

    /// `load` for a caller that has just missed in process memory: from
    /// Redis or Postgres, then kept in process memory.
    pub async fn load_missed(&self, user: UserId) -> Result<Option<Arc<KeyRecord>>, DomainError> {
        // Taken before the lower levels are read, so that an invalidation
        // arriving meanwhile keeps what they returned out of the local level.
        let ticket = self.local.ticket();
        let record = self
            .load_shared(user)
            .await?
            .map(|record| Arc::new(record.opened(&self.master_key)));
        if let Some(ticket) = ticket {
            self.local.insert(ticket, user, record.clone());
        }
        Ok(record)
    }

    /// The user's record if process memory holds it (`Some(None)`: known
    /// not to exist), with no I/O; `None` if it must be loaded.
    pub fn in_process(&self, user: UserId) -> Option<Option<Arc<KeyRecord>>> {
        let known = self.local.get(user)?;
        self.metrics.key_record_lookup("local_hit");
        Some(known)
    }

    /// Redis, then Postgres (written back to Redis).
    async fn load_shared(&self, user: UserId) -> Result<Option<KeyRecord>, DomainError> {
        let lookup = self.cache.get(user).await;
        self.metrics.key_record_lookup(match &lookup {
            Ok(Some(Cached::Record(_))) => "hit",
            Ok(Some(Cached::Absent)) => "negative_hit",
            Ok(None) => "miss",
            Err(CacheError::CircuitOpen) => "circuit_open",
            Err(_) => "error",
        });
        match lookup {
            Ok(Some(Cached::Record(bytes))) => match serde_json::from_slice::<KeyRecord>(&bytes) {
                // Sealed under a master key no longer listed (cached before
                // a rewrap): read afresh, and the write-back replaces it.
                Ok(record) if !self.sealed_under_listed_keys(&record) => {
                    tracing::info!(%user, "cached key record sealed under a retired master key; reloading")
                }
                Ok(record) => return Ok(Some(record)),
                Err(e) => {
                    tracing::warn!(%user, error = %e, "undecodable cached key record; reloading")
                }
            },
            Ok(Some(Cached::Absent)) => return Ok(None),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "key record cache lookup failed; using Postgres"),
        }
        self.metrics.postgres_fallback();
        let record = self.load_from_db(user).await?;
        self.write_back(user, record.as_ref()).await;
        Ok(record)
    }

    /// Whether the listed keys open `record`: told by the key id a sealed
    /// value names; a value sealed before key ids is opened to tell (on a
    /// Redis hit only, and only until `keys rewrap` has run).
    fn sealed_under_listed_keys(&self, record: &KeyRecord) -> bool {
        record
            .generations
            .iter()
            .all(|g| match KeyId::of(&g.sealed) {
                Some(_) => self.master_key.names_a_listed_key(&g.sealed),
                None => g.open(&self.master_key, record.user_id).is_ok(),
            })
    }

    /// Reads the record from Postgres, bypassing the cache.
    pub async fn load_from_db(&self, user: UserId) -> Result<Option<KeyRecord>, DomainError> {
        // One round trip: the three queries are pipelined on one connection
        // (sent together, run by Postgres in this order). The user row (and
        // its version) is read before the secrets: a rotation committing in
        // between yields an old version label on new secrets, which the next
        // write wins over; never new label, old secrets.
        let rows = self
            .db
            .query(async |conn| {
                let conn: &AsyncPgConnection = conn;
                let (mut a, mut b, mut c) = (conn, conn, conn);
                let (found, secrets, revoked) = futures_util::try_join!(
                    db::users::find_with_tenant_slug(&mut a, user),
                    db::secrets::usable(&mut b, user),
                    db::sessions::revoked_and_live(&mut c, user),
                )?;
                Ok(found.map(|found| (found, secrets, revoked)))
            })
            .await?;
        let Some(((user_row, tenant_slug), secrets, revoked_sessions)) = rows else {
            return Ok(None);
        };
        Ok(Some(KeyRecord {
            version: user_row.record_version,
            user_id: user,
            tenant_id: user_row.tenant_id,
            tenant_slug,
            username: user_row.username,
            role: user_row.role,
            disabled: user_row.disabled_at.is_some(),
            generations: secrets
                .into_iter()
                .map(|row| {
                    SealedGeneration::new(
                        row.generation,
                        row.ciphertext,
                        row.retired_at
                            .map(|retired| row.valid_until.unwrap_or(retired)),
                    )
                })
                .collect(),
            revoked_sessions,
        }))
    }

    /// After a committed change: puts the user's record as Postgres now has
    /// it into Redis, then tells every instance to drop its local copy, then
    /// marks the change published in the outbox (`propagation`). Fails if
    /// Redis cannot be updated, so no caller reports success while a stale
    /// entry could still accept old tokens; the outbox publishes it later.
    pub async fn publish(&self, user: UserId) -> Result<(), DomainError> {
        if let Some(version) = self.put_current(user).await? {
            self.mark_published(user, version).await;
        }
        Ok(())
    }

    /// After a committed deletion: caches "no such user" at `tombstone`, a
    /// version above any record of the user that could still be written back.
    pub async fn publish_deleted(&self, user: UserId, tombstone: i64) -> Result<(), DomainError> {
        self.put_deleted(user, tombstone).await?;
        self.mark_published(user, tombstone).await;
        Ok(())
    }

    /// `publish` without marking the outbox (for `propagation`, which marks
    /// the rows it holds locked): the version published, if the user exists.
    pub async fn put_current(&self, user: UserId) -> Result<Option<i64>, DomainError> {
        let record = self.load_from_db(user).await?;
        let written = match &record {
            Some(record) => {
                let payload = serde_json::to_vec(record).map_err(DomainError::internal)?;
                self.cache.put_record(user, record.version, &payload).await
            }
            None => self.cache.put_absent(user, 0).await,
        };
        self.publish_outcome(user, written).await?;
        Ok(record.map(|r| r.version))
    }

    /// `publish_deleted` without marking the outbox.
    pub async fn put_deleted(&self, user: UserId, tombstone: i64) -> Result<(), DomainError> {
        let written = self.cache.put_absent(user, tombstone).await;
        self.publish_outcome(user, written).await
    }

    /// Best effort: a change left unmarked is published once more by the
    /// drain, which is harmless. (Measured: marking in the background, or
    /// without waiting for the commit to reach the disk, did not make a
    /// rotation faster; see the README's benchmarks.)
    async fn mark_published(&self, user: UserId, version: i64) {
        let marked = self
            .db
            .query(async |conn| db::outbox::mark_published(conn, user, version).await)
            .await;
        if let Err(e) = marked {
            tracing::warn!(%user, error = %e, "could not mark a published change");
        }
    }

    async fn publish_outcome(
        &self,
        user: UserId,
        written: Result<(), CacheError>,
    ) -> Result<(), DomainError> {
        // Announced only once Redis has the new record: an instance that
        // reloads on the announcement must not find the old one there.
        let announced = match written {
            Ok(()) => self.cache.announce(user, self.local.is_live()).await,
            Err(e) => Err(e),
        };
        // This instance forgets at once, whatever Redis did.
        self.local.invalidate(user);
        let Err(e) = announced else { return Ok(()) };
        // Best effort: without an entry, readers fall through to Postgres.
        let removed = self.cache.remove(user).await;
        tracing::error!(%user, error = %e, removed = removed.is_ok(), "could not publish a changed key record");
        Err(DomainError::unavailable(Unpublished(e)))
    }

    async fn write_back(&self, user: UserId, record: Option<&KeyRecord>) {
        let written = match record {
            Some(record) => match serde_json::to_vec(record) {
                Ok(payload) => self.cache.put_record(user, record.version, &payload).await,
                Err(e) => {
                    tracing::error!(%user, error = %e, "could not serialise key record");
                    return;
                }
            },
            None => self.cache.put_absent(user, 0).await,
        };
        if let Err(e) = written {
            tracing::warn!(%user, error = %e, "could not cache key record");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(generations: Vec<SealedGeneration>) -> KeyRecord {
        KeyRecord {
            version: 1,
            user_id: UserId::generate(),
            tenant_id: TenantId::generate(),
            tenant_slug: TenantSlug::parse("acme").unwrap(),
            username: Username::parse("alice").unwrap(),
            role: Role::Member,
            disabled: false,
            generations: generations.into(),
            revoked_sessions: Vec::new(),
        }
    }

    fn generation(n: i64, valid_until: Option<DateTime<Utc>>) -> SealedGeneration {
        SealedGeneration::new(Generation::from_db(n), vec![n as u8; 72], valid_until)
    }

    #[test]
    fn current_and_grace_generations_are_usable_expired_ones_are_not() {
        let now = Utc::now();
        let r = record(vec![
            generation(3, None),
            generation(2, Some(now + chrono::Duration::seconds(30))),
            generation(1, Some(now - chrono::Duration::seconds(1))),
        ]);
        assert_eq!(r.current().unwrap().generation.get(), 3);
        assert!(r.usable(Generation::from_db(3), now).is_some());
        assert!(r.usable(Generation::from_db(2), now).is_some());
        assert!(r.usable(Generation::from_db(1), now).is_none());
        assert!(r.usable(Generation::from_db(4), now).is_none());
    }

    #[test]
    fn serialises_sealed_bytes_as_base64() {
        let r = record(vec![generation(1, None)]);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(&STANDARD.encode(vec![1u8; 72])));
        let back: KeyRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back.generations[0].sealed, vec![1u8; 72]);
    }

    #[test]
    fn a_record_held_in_process_keeps_opened_secrets_only_and_never_serialises() {
        let crate::domain::sample::Signed {
            master_key,
            record,
            token,
            rules,
        } = crate::domain::sample::signed();
        let generation = record.generations[0].generation;
        let held = record.opened(&master_key);
        assert!(held.generations[0].sealed.is_empty());
        // Still verifies: the secret was opened before its ciphertext went.
        rules.check(&token, generation, &held, Utc::now()).unwrap();
        assert!(serde_json::to_vec(&held).is_err());

        // One that does not open (sealed under another master key) keeps
        // its ciphertext.
        let mut other = crate::domain::sample::signed().record;
        let sealed = other.generations[0].sealed.clone();
        other.generations = [SealedGeneration::new(generation, sealed.clone(), None)].into();
        let kept = other.opened(&master_key);
        assert_eq!(kept.generations[0].sealed, sealed);
    }
}
