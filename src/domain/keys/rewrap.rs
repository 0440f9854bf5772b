//! Master key rotation, online: which key sealed what, the start-up check
//! that the listed keys open everything stored, and the re-sealing of every
//! stored value under the first listed key (`tenant-jwt keys status|rewrap`).
//!
//! Rewrapping goes in bounded batches (a page read, re-sealed in memory and
//! written back with one statement), each in a transaction of its own that
//! locks its rows (`FOR UPDATE SKIP LOCKED`), so instances keep serving and a
//! run interrupted anywhere resumes where it stopped: it only ever picks what
//! is not yet under the first key. A secret's plaintext never changes, so
//! tokens, and records cached in process or in Redis, stay good; a cached
//! record still sealed under a key later removed is reloaded from Postgres
//! (`KeyRecords`).

use crate::db::{self, Db};
use crate::domain::error::DomainError;
use crate::domain::keys::endpoint_secrets;
use crate::domain::keys::secrets::{KeyId, MasterKey};
use crate::types::ids::{Generation, UserId};

/// Values re-sealed per transaction.
pub const REWRAP_BATCH: i64 = 2_000;
/// Passes over the table before giving up on rows kept locked by others.
const MAX_PASSES: usize = 5;

/// What each key sealed.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    /// The listed keys, the sealing one first, each with the user secrets it
    /// sealed.
    pub listed: Vec<(KeyId, i64)>,
    /// Secrets sealed before key ids existed (opened by trying each key).
    pub without_id: i64,
    /// Secrets under keys that are not listed: they cannot be opened.
    pub unlisted: Vec<(String, i64)>,
    /// The key the start-up check value is sealed under (`None`: no id).
    pub check_value: Option<KeyId>,
}

impl KeyStatus {
    /// Listed keys, other than the first, that sealed nothing: safe to remove
    /// once every instance runs with the new list (and the check value is
    /// under the first key).
    pub fn no_longer_needed(&self) -> Vec<KeyId> {
        let first = self.listed.first().map(|(id, _)| *id);
        self.listed
            .iter()
            .filter(|(id, n)| Some(*id) != first && *n == 0 && self.check_value != Some(*id))
            .map(|(id, _)| *id)
            .collect()
    }
}

pub async fn status(db: &Db, master_key: &MasterKey) -> Result<KeyStatus, DomainError> {
    let (counts, check) = db
        .query(async |conn| {
            let counts = db::sealed::secrets_by_key(conn).await?;
            let check = db::sealed::check_value(conn).await?;
            Ok((counts, check))
        })
        .await?;
    let mut status = KeyStatus {
        listed: master_key.ids().into_iter().map(|id| (id, 0)).collect(),
        without_id: 0,
        unlisted: Vec::new(),
        check_value: check.as_deref().and_then(KeyId::of),
    };
    for count in counts {
        match count.key_id {
            None => status.without_id += count.secrets,
            Some(hex) => match status
                .listed
                .iter_mut()
                .find(|(id, _)| id.to_string() == hex)
            {
                Some((_, n)) => *n += count.secrets,
                None => status.unlisted.push((hex, count.secrets)),
            },
        }
    }
    Ok(status)
}

/// At start-up: every stored value opens under the listed keys, or an error
/// naming the key that is missing (its id only).
pub async fn check_listed_keys_open_everything(
    db: &Db,
    master_key: &MasterKey,
) -> Result<(), String> {
    let listed = || {
        master_key
            .ids()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let status = status(db, master_key).await.map_err(|e| e.to_string())?;
    if let Some((id, n)) = status.unlisted.first() {
        return Err(format!(
            "{n} stored secrets are sealed under master key {id}, which is not listed \
             (listed: {}); add it to TENANT_JWT_MASTER_KEY",
            listed()
        ));
    }
    if status.without_id > 0 {
        let sample = db
            .query(async |conn| db::sealed::one_without_key_id(conn).await)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(sample) = sample
            && master_key
                .unseal(sample.user_id, sample.generation, &sample.ciphertext)
                .is_err()
        {
            return Err(format!(
                "{} stored secrets were sealed before master key ids and no listed key \
                 (listed: {}) opens them; list the key they were sealed under",
                status.without_id,
                listed()
            ));
        }
    }
    Ok(())
}

/// How a rewrap went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rewrapped {
    pub secrets: u64,
    pub check_value: bool,
}

/// Re-seals every stored value under the first listed key, batch by batch;
/// `progress(done, total)` after each batch. Other instances keep serving.
pub async fn rewrap(
    db: &Db,
    master_key: &MasterKey,
    progress: impl FnMut(u64, u64),
) -> Result<Rewrapped, DomainError> {
    rewrap_in_pages(db, master_key, REWRAP_BATCH, progress).await
}

/// `rewrap` with pages of `page` secrets.
pub async fn rewrap_in_pages(
    db: &Db,
    master_key: &MasterKey,
    page: i64,
    mut progress: impl FnMut(u64, u64),
) -> Result<Rewrapped, DomainError> {
    let status = status(db, master_key).await?;
    let sealing = master_key.sealing_id();
    let total: i64 = status.without_id
        + status
            .listed
            .iter()
            .filter(|(id, _)| *id != sealing)
            .map(|(_, n)| n)
            .sum::<i64>();
    let total = u64::try_from(total).unwrap_or(0);
    let header = sealing.header();
    let mut done = Rewrapped::default();
    progress(0, total);
    // Passes in key order; a row a concurrent change held locked is skipped
    // and picked up by the next pass.
    for _pass in 0..MAX_PASSES {
        let mut after: Option<(UserId, Generation)> = None;
        let mut passed = 0;
        loop {
            let (batch, last) = db
                .transaction(async move |conn| {
                    let claimed =
                        db::sealed::claim_not_sealed_under(conn, &header, after, page).await?;
                    let resealed = claimed
                        .iter()
                        .map(|secret| {
                            let (user, generation) = (secret.user_id, secret.generation);
                            let plain = master_key.unseal(user, generation, &secret.ciphertext)?;
                            Ok((user, generation, master_key.seal(user, generation, &plain)?))
                        })
                        .collect::<Result<Vec<_>, DomainError>>()?;
                    db::sealed::replace_secrets(conn, &resealed).await?;
                    let last = claimed.last().map(|s| (s.user_id, s.generation));
                    Ok::<_, DomainError>((claimed.len() as u64, last))
                })
                .await?;
            done.secrets += batch;
            passed += batch;
            if batch > 0 {
                progress(done.secrets, total.max(done.secrets));
            }
            match last {
                Some(last) if batch == page as u64 => after = Some(last),
                _ => break,
            }
        }
        if passed == 0 {
            break;
        }
    }
    done.secrets += rewrap_endpoint_secrets(db, master_key, page).await?;
    done.check_value = db
        .transaction(async move |conn| {
            let Some(stored) = db::sealed::check_value(conn).await? else {
                return Ok::<_, DomainError>(false);
            };
            if KeyId::of(&stored) == Some(sealing) || !master_key.matches_key_check_value(&stored) {
                return Ok(false);
            }
            db::sealed::replace_check_value(conn, &master_key.key_check_value()?).await?;
            Ok(true)
        })
        .await?;
    Ok(done)
}

/// Re-seals webhook endpoints' secrets under the sealing key, `page`
/// endpoints per transaction; how many secrets it re-sealed.
async fn rewrap_endpoint_secrets(
    db: &Db,
    master_key: &MasterKey,
    page: i64,
) -> Result<u64, DomainError> {
    let header = master_key.sealing_id().header();
    let mut resealed = 0;
    // Each batch leaves its endpoints under the sealing key; rows others
    // hold locked are left to the next run.
    loop {
        let batch = db
            .transaction(async move |conn| {
                let claimed =
                    db::sealed::claim_endpoints_not_sealed_under(conn, &header, page).await?;
                let mut secrets = 0u64;
                for endpoint in &claimed {
                    let reseal = |s: &[u8]| endpoint_secrets::reseal(master_key, endpoint.id, s);
                    let secret = reseal(&endpoint.secret)?;
                    let previous = endpoint
                        .previous_secret
                        .as_deref()
                        .map(reseal)
                        .transpose()?;
                    let id = endpoint.id;
                    db::sealed::replace_endpoint_secrets(conn, id, &secret, previous.as_deref())
                        .await?;
                    secrets += 1 + u64::from(previous.is_some());
                }
                Ok::<_, DomainError>((claimed.len(), secrets))
            })
            .await?;
        resealed += batch.1;
        if batch.0 == 0 {
            break;
        }
    }
    Ok(resealed)
}
