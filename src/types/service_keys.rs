//! Service keys: the bearer credentials the SaaS backend's own services use
//! for introspection and administration.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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
    pub fn authenticate(&self, presented: &str) -> Option<ServiceKeyId> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for candidate in &self.digests {
            if bool::from(candidate.ct_eq(&digest)) {
                found = Some(candidate);
            }
        }
        found.map(|d| ServiceKeyId(d[..8].try_into().expect("8 of 32 bytes")))
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
        let a = keys.authenticate(A).unwrap();
        let b = keys.authenticate(B).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.to_string().len(), 16);
        assert!(
            keys.authenticate("service-key-c-0123456789abcdef0123456789")
                .is_none()
        );
        assert!(keys.authenticate("").is_none());
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
