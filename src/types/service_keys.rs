//! Service keys: the bearer credentials the SaaS backend's own services use
//! for introspection and administration. Root keys come from the
//! environment; stored credentials' keys (`tjs_…`) are generated here and
//! kept in Postgres as their digest only.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::ids::InvalidInput;

/// Shortest service key accepted, in characters.
pub const MIN_SERVICE_KEY_LEN: usize = 32;

/// The configured keys, kept only as SHA-256 digests. Never printed.
#[derive(Clone, Default)]
pub struct ServiceKeys {
    digests: Vec<[u8; 32]>,
}

/// Which configured key a caller used: the first 8 bytes of its SHA-256, in
/// hex. Safe to log and to record as an audit actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceKeyId([u8; 8]);

impl fmt::Display for ServiceKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ServiceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceKeys({} configured)", self.digests.len())
    }
}

impl ServiceKeys {
    /// Parses a comma-separated list; every key must be at least 32 characters.
    pub fn parse(list: &str) -> Result<Self, InvalidInput> {
        let mut digests = Vec::new();
        for key in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            if key.chars().count() < MIN_SERVICE_KEY_LEN {
                return Err(InvalidInput::new(
                    "service_keys",
                    "every service key must be at least 32 characters",
                ));
            }
            digests.push(Sha256::digest(key.as_bytes()).into());
        }
        Ok(Self { digests })
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// The key `presented` matches, if any. Compares digests in constant time
    /// against every configured key, without stopping at a match.
    pub fn authenticate(&self, presented: &KeyDigest) -> Option<ServiceKeyId> {
        let mut found = None;
        for candidate in &self.digests {
            if bool::from(candidate.ct_eq(&presented.0)) {
                found = Some(KeyDigest(*candidate).id());
            }
        }
        found
    }
}

/// The SHA-256 of a presented key: how root keys are compared and stored
/// credentials found. Its `Debug` shows only the short id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// A digest as stored (32 bytes, by a CHECK); `None` for anything else.
    pub fn from_stored(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The short id of the key: safe to log and to key rate limits by.
    pub fn id(&self) -> ServiceKeyId {
        ServiceKeyId(self.0[..8].try_into().expect("8 of 32 bytes"))
    }

    /// Whether the digest equals `other`, in constant time.
    pub fn ct_eq(&self, other: &KeyDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({})", self.id())
    }
}

/// The prefix of every stored credential's key, for secret scanners.
pub const STORED_KEY_PREFIX: &str = "tjs_";
/// 256 random bits, base64url without padding.
const STORED_KEY_CHARS: usize = 43;

/// Whether `key` has the shape of a stored credential's key. Anything else
/// is refused without a lookup.
pub fn is_stored_key(key: &str) -> bool {
    key.strip_prefix(STORED_KEY_PREFIX).is_some_and(|rest| {
        rest.len() == STORED_KEY_CHARS
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// A freshly generated key for a stored credential: shown once, in the
/// answer that creates it, then only its digest remains. Wiped on drop.
pub struct NewServiceKey(Zeroizing<String>);

impl NewServiceKey {
    pub fn generate() -> Result<Self, <rand::rngs::OsRng as rand::TryRngCore>::Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.try_fill_bytes(bytes.as_mut())?;
        let mut key = Zeroizing::new(String::with_capacity(
            STORED_KEY_PREFIX.len() + STORED_KEY_CHARS,
        ));
        key.push_str(STORED_KEY_PREFIX);
        URL_SAFE_NO_PAD.encode_string(bytes.as_ref(), &mut key);
        Ok(Self(key))
    }

    /// The key, for the one answer that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(&self.0)
    }
}

impl fmt::Debug for NewServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NewServiceKey({})", self.digest().id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "service-key-a-0123456789abcdef0123456789";
    const B: &str = "service-key-b-0123456789abcdef0123456789";

    #[test]
    fn accepts_configured_keys_only() {
        let keys = ServiceKeys::parse(&format!(" {A} , {B} ,")).unwrap();
        let a = keys.authenticate(&KeyDigest::of(A)).unwrap();
        let b = keys.authenticate(&KeyDigest::of(B)).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.to_string().len(), 16);
        assert!(
            keys.authenticate(&KeyDigest::of("service-key-c-0123456789abcdef0123456789"))
                .is_none()
        );
        assert!(keys.authenticate(&KeyDigest::of("")).is_none());
    }

    #[test]
    fn generated_keys_are_recognisable_and_distinct() {
        let a = NewServiceKey::generate().unwrap();
        let b = NewServiceKey::generate().unwrap();
        assert!(a.expose().starts_with("tjs_"));
        assert_eq!(a.expose().len(), 47);
        assert!(is_stored_key(a.expose()));
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.digest(), b.digest());
        assert!(!format!("{a:?}").contains(&a.expose()[4..]));
        assert!(!format!("{:?}", a.digest()).contains(&a.expose()[4..]));
    }

    #[test]
    fn only_the_stored_shape_is_looked_up() {
        let good = format!("tjs_{}", "A".repeat(43));
        assert!(is_stored_key(&good));
        for bad in [
            "tjs_".to_owned(),
            format!("tjs_{}", "A".repeat(42)),
            format!("tjs_{}", "A".repeat(44)),
            format!("tjs_{}=", "A".repeat(42)),
            format!("tjx_{}", "A".repeat(43)),
            A.to_owned(),
        ] {
            assert!(!is_stored_key(&bad), "{bad}");
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(ServiceKeys::parse("short").is_err());
        assert!(ServiceKeys::parse("").unwrap().is_empty());
    }

    #[test]
    fn debug_never_prints_keys() {
        let keys = ServiceKeys::parse(A).unwrap();
        assert_eq!(format!("{keys:?}"), "ServiceKeys(1 configured)");
    }
}
