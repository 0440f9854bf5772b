//! Tokens verified moments ago on this thread, so that a backend sending the
//! same token again (introspection, the check and forward-auth see the same
//! token on every request of a user's page) is not decoded, parsed and
//! HMAC-checked again: the answer is reused only for exactly the same bytes
//! (found by their SHA-256, compared in constant time), only while the record
//! it was checked against is still the one process memory holds for its user
//! (any change of the user makes a new record: a rotation, a disabled user, a
//! revoked session, a forgotten cache), and only while its time claims still
//! hold. So nothing is accepted here that the full path would refuse.
//! Envoy's `jwt_authn` keeps such a cache of verified tokens too.
//!
//! Per thread (the service's workers each run one), a fixed number of slots
//! indexed by the digest; a new token takes its slot from whatever was there.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use subtle::ConstantTimeEq;

use super::claims::Claims;
use super::key_records::KeyRecord;
use crate::types::ids::Generation;

/// Slots per thread (a power of two).
const SLOTS: usize = 1024;

type Digest = [u8; 32];

struct Entry {
    /// Which verifier filled it (tests run several services in one process).
    owner: u64,
    digest: Digest,
    claims: Claims,
    record: Arc<KeyRecord>,
    /// The Unix millisecond from which a time check would fail.
    valid_until: i64,
}

thread_local! {
    static SLOTS_HERE: RefCell<Vec<Option<Entry>>> = const { RefCell::new(Vec::new()) };
}

/// A verifier's handle on the per-thread slots.
#[derive(Clone)]
pub struct Recent {
    owner: u64,
}

impl Default for Recent {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            owner: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// The SHA-256 of a token: its identity here.
pub fn digest(token: &str) -> Digest {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The Unix millisecond from which a token that passed the verify path's
/// checks with these claims under `generation` of `record` would no longer
/// pass its time checks: `exp` with the leeway, no older than the longest
/// lifetime issued, the generation's grace. `nbf` and `iat` only grow truer
/// with time. `limits` are `TokenRules::time_limits`.
pub fn valid_until(
    claims: &Claims,
    generation: Generation,
    record: &KeyRecord,
    (leeway, longest): (i64, i64),
) -> i64 {
    // `check` compares whole seconds: valid through the last one.
    let seconds = claims
        .exp
        .saturating_add(leeway)
        .min(claims.iat.saturating_add(longest))
        .saturating_add(1)
        .saturating_mul(1000);
    let grace = record
        .generations
        .iter()
        .find(|g| g.generation == generation)
        .map_or(i64::MIN, |g| {
            g.valid_until
                .map_or(i64::MAX, |until| until.timestamp_millis())
        });
    seconds.min(grace)
}

fn slot(digest: &Digest) -> usize {
    usize::from(u16::from_le_bytes([digest[0], digest[1]])) % SLOTS
}

impl Recent {
    /// The claims verified for exactly this token, if they were checked
    /// against `current` (the record process memory holds for their user
    /// now) and still hold at `now` (Unix milliseconds).
    pub fn get(
        &self,
        digest: &Digest,
        now: i64,
        current: impl FnOnce(&Claims) -> Option<Arc<KeyRecord>>,
    ) -> Option<(Claims, Arc<KeyRecord>)> {
        let found = SLOTS_HERE.with_borrow(|slots| {
            let entry = slots.get(slot(digest))?.as_ref()?;
            let same = entry.owner == self.owner && bool::from(entry.digest.ct_eq(digest));
            (same && now < entry.valid_until).then(|| (entry.claims.clone(), entry.record.clone()))
        })?;
        let record = current(&found.0)?;
        Arc::ptr_eq(&record, &found.1).then_some(found)
    }

    /// Keeps what the full path verified for this token.
    pub fn put(&self, digest: Digest, claims: &Claims, record: &Arc<KeyRecord>, valid_until: i64) {
        SLOTS_HERE.with_borrow_mut(|slots| {
            if slots.is_empty() {
                slots.resize_with(SLOTS, || None);
            }
            slots[slot(&digest)] = Some(Entry {
                owner: self.owner,
                digest,
                claims: claims.clone(),
                record: record.clone(),
                valid_until,
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sample;

    fn verified() -> (String, Claims, Arc<KeyRecord>) {
        let signed = sample::signed();
        let record = Arc::new(signed.record);
        let unverified = crate::domain::tokens::verify::Unverified::read(&signed.token).unwrap();
        let claims = signed
            .rules
            .check(
                &signed.token,
                unverified.generation,
                &record,
                chrono::Utc::now(),
            )
            .unwrap();
        (signed.token, claims, record)
    }

    #[test]
    fn only_the_same_bytes_against_the_same_record_while_the_claims_hold() {
        let recent = Recent::default();
        let (token, claims, record) = verified();
        let until = claims.exp * 1000;
        recent.put(digest(&token), &claims, &record, until);
        let same = |_: &Claims| Some(record.clone());
        let found = recent.get(&digest(&token), until - 1, same).unwrap();
        assert_eq!(found.0, claims);
        assert!(Arc::ptr_eq(&found.1, &record));

        assert!(
            recent.get(&digest(&token), until + 1, same).is_none(),
            "expired"
        );
        let mut other = token.clone();
        other.push('A');
        assert!(
            recent.get(&digest(&other), until, same).is_none(),
            "other bytes"
        );
        let changed = Arc::new((*record).clone());
        assert!(
            recent
                .get(&digest(&token), until, |_| Some(changed.clone()))
                .is_none(),
            "the user's record changed since"
        );
        assert!(
            recent.get(&digest(&token), until, |_| None).is_none(),
            "no longer held"
        );
        assert!(
            Recent::default()
                .get(&digest(&token), until, same)
                .is_none(),
            "another verifier's"
        );
    }

    #[test]
    fn a_slot_holds_the_last_token_put_there() {
        let recent = Recent::default();
        let (token, claims, record) = verified();
        let same = |_: &Claims| Some(record.clone());
        recent.put(digest(&token), &claims, &record, i64::MAX);
        // Another token landing in the same slot replaces it.
        let other = (0..)
            .map(|n| format!("{token}{n}"))
            .find(|t| slot(&digest(t)) == slot(&digest(&token)))
            .unwrap();
        recent.put(digest(&other), &claims, &record, i64::MAX);
        assert!(recent.get(&digest(&token), 0, same).is_none());
        assert!(recent.get(&digest(&other), 0, same).is_some());
    }

    #[test]
    fn a_verification_lasts_until_the_first_time_check_would_fail() {
        let signed = sample::signed();
        let (_, claims, record) = verified();
        let generation = Generation::from_db(1);
        let (leeway, longest) = signed.rules.time_limits();
        let until = valid_until(&claims, generation, &record, signed.rules.time_limits());
        let by_claims = (claims.exp + leeway).min(claims.iat + longest);
        assert_eq!(until, (by_claims + 1) * 1000);
        // A previous generation in its grace: until the grace ends.
        let mut graced = (*record).clone();
        let ends = chrono::Utc::now() + chrono::Duration::milliseconds(2_500);
        graced.generations[0].valid_until = Some(ends);
        let until = valid_until(&claims, generation, &graced, signed.rules.time_limits());
        assert_eq!(until, ends.timestamp_millis());
        // A generation the record does not hold: never.
        let other = Generation::from_db(9);
        assert_eq!(
            valid_until(&claims, other, &record, signed.rules.time_limits()),
            i64::MIN
        );
    }
}
