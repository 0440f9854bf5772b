//! Token verification: the hot path, called on every request of the SaaS
//! backend. Read `Verifier::verify_now` then `Verifier::verify_loaded` top to
//! bottom (steps 1-3 are in `Unverified::read`, steps 5-6 in
//! `TokenRules::check`, both free of I/O so that benchmarks and fuzzers can
//! drive them):
//!
//! 1. shape: at most 4 KiB, three base64url segments; nothing decoded before;
//! 2. header: `alg` exactly HS256, `kid` a decimal generation, no other
//!    members (so `jku`, `jwk`, `x5u`, `crit` are refused, never honoured);
//! 3. the unverified `sub`, only to know whose key to load; a UUID or reject
//!    with no I/O;
//! 4. the user's key record: one cache lookup (Postgres on a miss);
//! 5. the signature under the `kid` generation's secret, then `exp`, `nbf`,
//!    `iat`, `iss` and `aud`, and the token's lifetime: none longer than the
//!    service issues (`exp - iat`), none issued longer ago than that, so a
//!    leaked secret mints nothing longer-lived than a real token;
//! 6. the claims against the record: same user, same tenant, same role, not
//!    disabled, session not revoked.
//!
//! `verify_now` runs them all without waiting when step 4 finds the record
//! in process memory (the hot path); when it does not, it hands what it read
//! to `verify_loaded`, which loads the record and goes on (`verify` is the
//! two in turn), so nothing is read twice. Before step 1, a token this thread
//! verified moments ago is answered from `recent` when the record it was
//! checked against is still the one process memory holds and its time
//! claims still hold (step 0).
//!
//! Every rejection is one `DomainError::InvalidToken`; its reason is logged
//! here and never shown to the client.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::config::TokenSettings;
use crate::domain::error::{DomainError, Rejection};
use crate::domain::keys::secrets::MasterKey;
use crate::domain::tokens::claims::Claims;
use crate::domain::tokens::key_records::{KeyRecord, KeyRecords};
use crate::domain::tokens::metrics::TokenMetrics;
use crate::domain::tokens::recent::{self, Recent};
use crate::metrics::Metrics;
use crate::types::ids::{Generation, UserId};

/// Longest token looked at.
pub const MAX_TOKEN_LEN: usize = 4096;
/// An HS256 signature: 32 bytes, 43 base64url characters.
const SIGNATURE_LEN: usize = 43;
/// An HMAC-SHA256 tag, in bytes.
const HS256_TAG_LEN: usize = 32;

/// A token that passed every check, with the record it was checked against.
#[derive(Debug, Clone)]
pub struct Verified {
    pub claims: Claims,
    pub record: Arc<KeyRecord>,
}

/// The JOSE header we issue, and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kid: Cow<'a, str>,
}

/// The one claim read before the signature is checked.
#[derive(Deserialize)]
struct UnverifiedSubject<'a> {
    #[serde(borrow)]
    sub: Cow<'a, str>,
}

/// How far `Verifier::verify_now` got.
pub enum Now {
    /// Verified or refused.
    Done(Result<Verified, DomainError>),
    /// The user's record is not in process memory: `verify_loaded` goes on.
    Load(Unverified),
}

#[derive(Clone)]
pub struct Verifier {
    rules: TokenRules,
    key_records: KeyRecords,
    recent: Recent,
    metrics: Arc<TokenMetrics>,
}

impl Verifier {
    pub fn new(
        settings: &TokenSettings,
        master_key: Arc<MasterKey>,
        key_records: KeyRecords,
        metrics: Metrics,
    ) -> Self {
        Self {
            rules: TokenRules::new(settings, master_key),
            key_records,
            recent: Recent::default(),
            metrics: metrics.area(),
        }
    }

    /// Verifies a bearer token. A rejection is logged with its reason (and
    /// the unverified subject, if the token had one): no span, no log line
    /// on success, so the hot path writes nothing but the access line.
    pub async fn verify(&self, token: &str) -> Result<Verified, DomainError> {
        match self.verify_now(token) {
            Now::Done(outcome) => outcome,
            // Boxed: the loading future is large, and callers' futures would
            // otherwise carry (and move) it on every call, hit or miss.
            Now::Load(unverified) => Box::pin(self.verify_loaded(token, unverified)).await,
        }
    }

    /// `verify` up to where it would wait: steps 1-3, then step 4 from
    /// process memory and steps 5-6, or `Now::Load` when the record must be
    /// loaded (`verify_loaded` goes on). Extractors answer a token of a
    /// cached user with a ready future through this.
    pub fn verify_now(&self, token: &str) -> Now {
        // 0. Exactly this token, verified moments ago on this thread against
        //    the record process memory still holds, its time claims holding.
        let digest = recent::digest(token);
        let current = |claims: &Claims| self.key_records.in_process(claims.sub).flatten();
        if let Some((claims, record)) =
            self.recent
                .get(&digest, Utc::now().timestamp_millis(), current)
        {
            return Now::Done(self.observed(token, Ok(Verified { claims, record })));
        }
        // 1-3. Shape, header and the unverified subject: no I/O yet.
        let outcome = match Unverified::read(token) {
            // 4. The user's key record, if process memory holds it.
            Ok(unverified) => match self.key_records.in_process(unverified.user_id) {
                Some(record) => self.against(token, digest, unverified, record),
                None => return Now::Load(unverified),
            },
            Err(rejection) => Err(rejection.into()),
        };
        Now::Done(self.observed(token, outcome))
    }

    /// Step 4 from Redis or Postgres (process memory missed: `verify_now`
    /// asked), then steps 5-6.
    pub async fn verify_loaded(
        &self,
        token: &str,
        unverified: Unverified,
    ) -> Result<Verified, DomainError> {
        let outcome = match self.key_records.load_missed(unverified.user_id).await {
            Ok(record) => self.against(token, recent::digest(token), unverified, record),
            Err(e) => Err(e),
        };
        self.observed(token, outcome)
    }

    /// Steps 5 and 6 against the user's record (`None`: no such user); a
    /// token that passes is kept in `recent`.
    fn against(
        &self,
        token: &str,
        digest: [u8; 32],
        unverified: Unverified,
        record: Option<Arc<KeyRecord>>,
    ) -> Result<Verified, DomainError> {
        let (record, generation) = (record.ok_or(Rejection::UnknownUser)?, unverified.generation);
        let claims = self.rules.check(token, generation, &record, Utc::now())?;
        let limits = self.rules.time_limits();
        let until = recent::valid_until(&claims, generation, &record, limits);
        self.recent.put(digest, &claims, &record, until);
        Ok(Verified { claims, record })
    }

    /// Counts the outcome; logs a rejection with its reason.
    fn observed(
        &self,
        token: &str,
        outcome: Result<Verified, DomainError>,
    ) -> Result<Verified, DomainError> {
        match &outcome {
            Ok(_) => self.metrics.verification("ok"),
            Err(DomainError::InvalidToken(reason)) => {
                self.metrics.verification(reason.as_str());
                let sub = Unverified::read(token).ok().map(|u| u.user_id);
                tracing::info!(
                    reason = reason.as_str(),
                    sub = sub.map(tracing::field::display),
                    "token rejected"
                );
            }
            Err(_) => self.metrics.verification("unavailable"),
        }
        outcome
    }
}

/// What a token says before its signature is checked: only which user's key
/// to load, and which generation of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unverified {
    pub user_id: UserId,
    pub generation: Generation,
}

impl Unverified {
    /// Steps 1 to 3: shape, header, unverified subject.
    pub fn read(token: &str) -> Result<Self, Rejection> {
        // 1. Shape, before any decoding work.
        let [header_b64, payload_b64, _signature] =
            split_compact(token).ok_or(Rejection::Malformed)?;

        // 2. Header.
        let mut buf = [0u8; MAX_SEGMENT_LEN];
        let header: JoseHeader =
            decode_segment(header_b64, &mut buf).ok_or(Rejection::Malformed)?;
        if header.alg != "HS256" {
            return Err(Rejection::UnsupportedAlgorithm);
        }
        if header.typ.as_deref().is_some_and(|typ| typ != "JWT") {
            return Err(Rejection::Malformed);
        }
        let generation = Generation::parse_kid(&header.kid).map_err(|_| Rejection::Malformed)?;

        // 3. Unverified subject: only to know whose key to load.
        let mut buf = [0u8; MAX_SEGMENT_LEN];
        let subject: UnverifiedSubject =
            decode_segment(payload_b64, &mut buf).ok_or(Rejection::Malformed)?;
        let user_id = UserId::parse(&subject.sub).map_err(|_| Rejection::Malformed)?;
        Ok(Self {
            user_id,
            generation,
        })
    }
}

/// Steps 5 and 6, which need the user's record but no I/O.
#[derive(Clone)]
pub struct TokenRules {
    master_key: Arc<MasterKey>,
    issuer: String,
    audience: String,
    leeway_secs: i64,
    /// The access-token lifetime the service issues, in seconds.
    lifetime_secs: i64,
}

impl TokenRules {
    pub fn new(settings: &TokenSettings, master_key: Arc<MasterKey>) -> Self {
        Self {
            master_key,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway_secs: i64::try_from(settings.leeway.as_secs()).unwrap_or(0),
            lifetime_secs: i64::try_from(settings.access_ttl.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// The leeway and the longest lifetime accepted, in seconds.
    pub fn time_limits(&self) -> (i64, i64) {
        let longest = self.lifetime_secs.saturating_add(self.leeway_secs);
        (self.leeway_secs, longest)
    }

    /// Checks `token`, signed with `generation` of `record`'s user, at `now`.
    pub fn check(
        &self,
        token: &str,
        generation: Generation,
        record: &KeyRecord,
        now: DateTime<Utc>,
    ) -> Result<Claims, Rejection> {
        // 5. The signature under the kid's generation (jsonwebtoken's HMAC,
        //    compared in constant time), then the claims, parsed once.
        // The shape was checked by `Unverified::read`; here only split.
        let (signed, signature) = token.rsplit_once('.').ok_or(Rejection::Malformed)?;
        let (_, payload_b64) = signed.split_once('.').ok_or(Rejection::Malformed)?;
        let sealed = record
            .usable(generation, now)
            .ok_or(Rejection::RetiredGeneration)?;
        let secret = sealed.open(&self.master_key, record.user_id).map_err(|e| {
            tracing::error!(error = %e, "stored secret does not open under the master key");
            Rejection::UndecryptableSecret
        })?;
        // Room over the tag's 32 bytes: the decoder sizes its output
        // conservatively. Non-canonical base64 is refused, not accepted as
        // another spelling of the same tag.
        let mut tag = [0u8; 48];
        let tag = match URL_SAFE_NO_PAD.decode_slice(signature, &mut tag) {
            Ok(HS256_TAG_LEN) => &tag[..HS256_TAG_LEN],
            _ => return Err(Rejection::Malformed),
        };
        if !secret.verifies(signed.as_bytes(), tag) {
            return Err(Rejection::BadSignature);
        }
        // Every claim is required: a missing one fails to parse.
        let mut buf = [0u8; MAX_SEGMENT_LEN];
        let claims: Claims = decode_segment(payload_b64, &mut buf).ok_or(Rejection::Malformed)?;
        let (now, (leeway, longest)) = (now.timestamp(), self.time_limits());
        if claims.exp < now - leeway {
            return Err(Rejection::Expired);
        }
        if claims.nbf > now + leeway {
            return Err(Rejection::NotYetValid);
        }
        if claims.iat > now + leeway {
            return Err(Rejection::IssuedInFuture);
        }
        if claims.exp.saturating_sub(claims.iat) > longest {
            return Err(Rejection::LifetimeTooLong);
        }
        if claims.iat < now.saturating_sub(longest) {
            return Err(Rejection::IssuedTooLongAgo);
        }
        if claims.iss != self.issuer {
            return Err(Rejection::WrongIssuer);
        }
        if claims.aud != self.audience {
            return Err(Rejection::WrongAudience);
        }

        // 6. The claims must describe the user as they are now.
        if claims.sub != record.user_id
            || claims.tid != record.tenant_id
            || claims.role != record.role
        {
            return Err(Rejection::ClaimsMismatch);
        }
        if record.disabled {
            return Err(Rejection::Disabled);
        }
        if record.revoked_sessions.contains(&claims.sid) {
            return Err(Rejection::RevokedSession);
        }
        Ok(claims)
    }
}

/// Splits a compact JWS into its three segments if it is at most 4 KiB, has
/// exactly three non-empty base64url segments and an HS256-sized signature.
fn split_compact(token: &str) -> Option<[&str; 3]> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let mut parts = token.split('.');
    let segments = [parts.next()?, parts.next()?, parts.next()?];
    if parts.next().is_some() || segments[2].len() != SIGNATURE_LEN {
        return None;
    }
    let base64url = |s: &str| !s.is_empty() && s.bytes().all(|b| BASE64URL[usize::from(b)]);
    segments.iter().all(|s| base64url(s)).then_some(segments)
}

/// The base64url alphabet, as a table: this check runs over every byte of
/// every token.
const BASE64URL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    table
};

/// Room for any decoded segment of a token of at most `MAX_TOKEN_LEN`.
const MAX_SEGMENT_LEN: usize = MAX_TOKEN_LEN / 4 * 3;

/// Decodes a segment into `buf` (on the stack: no allocation on the hot
/// path) and parses its JSON, borrowing strings from `buf` where it can.
fn decode_segment<'b, T: Deserialize<'b>>(
    segment: &str,
    buf: &'b mut [u8; MAX_SEGMENT_LEN],
) -> Option<T> {
    let len = URL_SAFE_NO_PAD.decode_slice(segment, buf).ok()?;
    serde_json::from_slice(&buf[..len]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";

    #[test]
    fn compact_shape_is_checked_before_decoding() {
        assert!(split_compact(&format!("aGk.aGk.{SIG}")).is_some());
        for bad in [
            "".to_owned(),
            "a.b".to_owned(),
            format!("a.b.{SIG}.d"),
            format!(".b.{SIG}"),
            "a.b.".to_owned(),
            "a.b.short".to_owned(),
            format!("a=.b.{SIG}"),
            format!("a+.b.{SIG}"),
            format!("{}.b.{SIG}", "a".repeat(MAX_TOKEN_LEN)),
        ] {
            assert!(split_compact(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn header_refuses_unknown_members() {
        let decode = |json: &str| {
            let mut buf = [0u8; MAX_SEGMENT_LEN];
            decode_segment::<JoseHeader>(&URL_SAFE_NO_PAD.encode(json), &mut buf).map(|_| ())
        };
        assert!(decode(r#"{"alg":"HS256","typ":"JWT","kid":"1"}"#).is_some());
        assert!(decode(r#"{"alg":"HS256","kid":"1"}"#).is_some());
        assert!(decode(r#"{"alg":"HS256","kid":"1","jku":"https://evil"}"#).is_none());
        assert!(decode(r#"{"alg":"HS256","kid":"1","jwk":{}}"#).is_none());
        assert!(decode(r#"{"alg":"HS256","kid":"1","x5u":"https://evil"}"#).is_none());
        assert!(decode(r#"{"alg":"HS256","alg":"none","kid":"1"}"#).is_none());
        assert!(decode(r#"{"alg":"HS256"}"#).is_none());
    }
}

/// Properties of the I/O-free steps over generated input: nothing panics,
/// and no change to a valid token is accepted.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    // Arbitrary bytes and edits of a valid token: see `crate::fuzzing`.
    proptest! {
        #![proptest_config(crate::fuzzing::properties::config("tests/proptest-regressions/verify.txt"))]

        #[test]
        fn reading_token_shaped_input_never_panics(
            header in "[A-Za-z0-9_-]{1,300}",
            payload in "[A-Za-z0-9_-]{1,300}",
            signature in "[A-Za-z0-9_-]{43}",
        ) {
            let _ = Unverified::read(&format!("{header}.{payload}.{signature}"));
        }
    }
}
