//! Per-user signing secrets and the master key that encrypts them at rest.
//!
//! A user secret is 32 bytes from the OS CSPRNG, one per user per generation.
//! Postgres and Redis only ever hold it sealed with XChaCha20-Poly1305 under
//! the master key, with the user id and generation as associated data: a
//! ciphertext copied onto another user's row (or another generation) does not
//! open, and a dump of either store alone cannot sign a token.
//!
//! The master key may be a list (`TENANT_JWT_MASTER_KEY=K2,K1`): the first
//! seals everything new, every listed key opens. A sealed value starts with
//! the id of the key that sealed it (`tjk1` and 8 bytes of SHA-256 over the
//! key: safe to print), so opening never tries keys in turn; values sealed
//! before ids existed (nonce first, no header) are tried under each key.

use std::fmt;
use std::io;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::TryRngCore;
use rand::rngs::OsRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::types::ids::{Generation, UserId};

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
pub const SECRET_LEN: usize = 32;
/// What starts a sealed value that names its key: magic, then the key id.
const HEADER_MAGIC: &[u8; 4] = b"tjk1";
const KEY_ID_LEN: usize = 8;
const HEADER_LEN: usize = HEADER_MAGIC.len() + KEY_ID_LEN;
/// Length of a sealed user secret: header || nonce || ciphertext || tag.
pub const SEALED_LEN: usize = HEADER_LEN + NONCE_LEN + SECRET_LEN + TAG_LEN;

const USER_SECRET_AAD: &[u8] = b"tenant-jwt/user-secret/v1";
const KEY_CHECK_AAD: &[u8] = b"tenant-jwt/master-key-check/v1";
const KEY_CHECK_PLAINTEXT: &[u8] = b"tenant-jwt master key check";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the OS random number generator failed: {0}")]
    Rng(String),
    #[error("a sealed secret did not open under the master key")]
    Unseal,
    #[error("a sealed secret names master key {0}, which is not among the listed keys")]
    UnknownKey(KeyId),
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("master key file {path}: {source}")]
    KeyFile { path: String, source: io::Error },
}

fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, SecretError> {
    let mut buf = Zeroizing::new([0u8; N]);
    OsRng
        .try_fill_bytes(buf.as_mut())
        .map_err(|e| SecretError::Rng(e.to_string()))?;
    Ok(buf)
}

/// One user's HS256 signing secret, in the clear. Never printed, zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct UserSecret([u8; SECRET_LEN]);

impl UserSecret {
    pub fn generate() -> Result<Self, SecretError> {
        Ok(Self(*random_bytes::<SECRET_LEN>()?))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Whether `tag` is the HMAC-SHA256 of `message` under this secret,
    /// compared in constant time (aws-lc, the backend jsonwebtoken uses;
    /// called directly to spare the allocations of its generic verifier).
    pub fn verifies(&self, message: &[u8], tag: &[u8]) -> bool {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.0);
        aws_lc_rs::hmac::verify(&key, message, tag).is_ok()
    }
}

impl fmt::Debug for UserSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserSecret(<redacted>)")
    }
}

/// Which master key sealed a value: 8 bytes of SHA-256 over the key, shown
/// in hex. Reveals nothing of the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    /// The header a value sealed under this key starts with.
    pub fn header(&self) -> [u8; HEADER_LEN] {
        let mut header = [0u8; HEADER_LEN];
        header[..HEADER_MAGIC.len()].copy_from_slice(HEADER_MAGIC);
        header[HEADER_MAGIC.len()..].copy_from_slice(&self.0);
        header
    }

    /// The id `sealed` names, if it has a header (values sealed before key
    /// ids existed have none).
    pub fn of(sealed: &[u8]) -> Option<KeyId> {
        if sealed.len() < HEADER_LEN + NONCE_LEN + TAG_LEN || !sealed.starts_with(HEADER_MAGIC) {
            return None;
        }
        let id: [u8; KEY_ID_LEN] = sealed[HEADER_MAGIC.len()..HEADER_LEN].try_into().ok()?;
        Some(KeyId(id))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

struct Key {
    id: KeyId,
    cipher: XChaCha20Poly1305,
}

/// The master keys: the first seals every user secret, each opens what it
/// sealed. Never printed; the ciphers zero their copies of the keys on drop.
pub struct MasterKey {
    /// Never empty.
    keys: Vec<Key>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Parses the base64 form used by `TENANT_JWT_MASTER_KEY` and key files:
    /// one key, or several separated by commas or lines, the sealing key first.
    pub fn from_base64(encoded: &str) -> Result<Self, SecretError> {
        let mut keys: Vec<Key> = Vec::new();
        for (i, part) in encoded
            .split([',', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            let key = Self::key_from_base64(part)
                .map_err(|e| SecretError::MasterKey(format!("key {} of the list {e}", i + 1)))?;
            if keys.iter().any(|k| k.id == key.id) {
                return Err(SecretError::MasterKey(format!(
                    "key {} of the list repeats key {}",
                    i + 1,
                    key.id
                )));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(SecretError::MasterKey("is empty".into()));
        }
        Ok(Self { keys })
    }

    fn key_from_base64(encoded: &str) -> Result<Key, String> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(encoded)
                .map_err(|_| "must be standard base64 of exactly 32 bytes".to_owned())?,
        );
        let key: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| format!("must decode to exactly 32 bytes, got {}", bytes.len()))?;
        Ok(Self::key(key))
    }

    fn key(key: &[u8; 32]) -> Key {
        use sha2::Digest;
        let digest = sha2::Sha256::new()
            .chain_update(b"tenant-jwt master key id\0")
            .chain_update(key)
            .finalize();
        let id: [u8; KEY_ID_LEN] = digest[..KEY_ID_LEN].try_into().expect("8 of 32 bytes");
        Key {
            id: KeyId(id),
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// The key that seals: the first listed.
    pub fn sealing_id(&self) -> KeyId {
        self.keys[0].id
    }

    /// Every listed key, the sealing one first.
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|k| k.id).collect()
    }

    /// Whether a listed key can open `sealed` as far as its header tells: it
    /// names a listed key, or has no header (an older value).
    pub fn names_a_listed_key(&self, sealed: &[u8]) -> bool {
        KeyId::of(sealed).is_none_or(|id| self.keys.iter().any(|k| k.id == id))
    }

    /// A fresh random key, in base64, for a new key file or for an operator.
    pub fn generate_base64() -> Result<Zeroizing<String>, SecretError> {
        Ok(Zeroizing::new(STANDARD.encode(*random_bytes::<32>()?)))
    }

    /// Seals a user secret for (user, generation).
    pub fn seal(
        &self,
        user: UserId,
        generation: Generation,
        secret: &UserSecret,
    ) -> Result<Vec<u8>, SecretError> {
        self.seal_with_aad(&user_secret_aad(user, generation), secret.expose())
    }

    /// Opens a sealed user secret; fails if it was sealed under another key or
    /// for another (user, generation).
    pub fn unseal(
        &self,
        user: UserId,
        generation: Generation,
        sealed: &[u8],
    ) -> Result<UserSecret, SecretError> {
        let plain = self.open_with_aad(&user_secret_aad(user, generation), sealed)?;
        let bytes: [u8; SECRET_LEN] = plain
            .as_slice()
            .try_into()
            .map_err(|_| SecretError::Unseal)?;
        Ok(UserSecret(bytes))
    }

    /// A value that proves, later, which master key a database was set up with.
    pub fn key_check_value(&self) -> Result<Vec<u8>, SecretError> {
        self.seal_with_aad(KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT)
    }

    /// Whether `sealed` (from [`Self::key_check_value`]) was made with this key.
    pub fn matches_key_check_value(&self, sealed: &[u8]) -> bool {
        self.open_with_aad(KEY_CHECK_AAD, sealed)
            .is_ok_and(|plain| plain.as_slice() == KEY_CHECK_PLAINTEXT)
    }

    pub(crate) fn seal_with_aad(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, SecretError> {
        let nonce = random_bytes::<NONCE_LEN>()?;
        let sealing = &self.keys[0];
        let ciphertext = sealing
            .cipher
            .encrypt(
                XNonce::from_slice(nonce.as_ref()),
                Payload { msg: plain, aad },
            )
            .map_err(|_| SecretError::Unseal)?;
        let mut sealed = Vec::with_capacity(HEADER_LEN + NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&sealing.id.header());
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Opens `sealed` under the key its header names; a value without a
    /// header (sealed before key ids) under each key in turn.
    pub(crate) fn open_with_aad(
        &self,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let named = KeyId::of(sealed);
        if let Some(id) = named
            && let Some(key) = self.keys.iter().find(|k| k.id == id)
        {
            return open(&key.cipher, aad, &sealed[HEADER_LEN..]);
        }
        // No header, or (one chance in 2^32 for an old value) a header-like
        // nonce: try the value whole under each key.
        for key in &self.keys {
            if let Ok(plain) = open(&key.cipher, aad, sealed) {
                return Ok(plain);
            }
        }
        Err(named.map_or(SecretError::Unseal, SecretError::UnknownKey))
    }
}

fn open(
    cipher: &XChaCha20Poly1305,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(SecretError::Unseal);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SecretError::Unseal)
}

fn user_secret_aad(user: UserId, generation: Generation) -> [u8; 25 + 16 + 8] {
    let mut aad = [0u8; 25 + 16 + 8];
    aad[..25].copy_from_slice(USER_SECRET_AAD);
    aad[25..41].copy_from_slice(user.as_uuid().as_bytes());
    aad[41..].copy_from_slice(&generation.get().to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap()
    }

    #[test]
    fn sealed_secret_opens_only_for_its_own_user_generation_and_key() {
        let key = key();
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let secret = UserSecret::generate().unwrap();
        let sealed = key.seal(alice, Generation::FIRST, &secret).unwrap();
        assert_eq!(sealed.len(), SEALED_LEN);
        assert_eq!(
            key.unseal(alice, Generation::FIRST, &sealed)
                .unwrap()
                .expose(),
            secret.expose()
        );
        assert!(key.unseal(bob, Generation::FIRST, &sealed).is_err());
        assert!(
            key.unseal(alice, Generation::FIRST.next(), &sealed)
                .is_err()
        );
        assert!(
            self::key()
                .unseal(alice, Generation::FIRST, &sealed)
                .is_err()
        );
        let mut tampered = sealed.clone();
        tampered[30] ^= 1;
        assert!(key.unseal(alice, Generation::FIRST, &tampered).is_err());
        assert!(key.unseal(alice, Generation::FIRST, &sealed[..10]).is_err());
    }

    #[test]
    fn a_key_list_seals_under_the_first_and_opens_under_any() {
        let (k1, k2) = (
            MasterKey::generate_base64().unwrap(),
            MasterKey::generate_base64().unwrap(),
        );
        let only = |k: &str| MasterKey::from_base64(k).unwrap();
        let both = MasterKey::from_base64(&format!("{},{}", *k2, *k1)).unwrap();
        let in_a_file = MasterKey::from_base64(&format!("{}\n{}\n", *k2, *k1)).unwrap();
        assert_eq!(both.ids(), in_a_file.ids());
        assert_eq!(both.ids(), [only(&k2).sealing_id(), only(&k1).sealing_id()]);
        assert_eq!(both.sealing_id().to_string().len(), 16, "8 bytes in hex");

        let user = UserId::generate();
        let secret = UserSecret::generate().unwrap();
        let under_k1 = only(&k1).seal(user, Generation::FIRST, &secret).unwrap();
        let under_k2 = both.seal(user, Generation::FIRST, &secret).unwrap();
        assert_eq!(KeyId::of(&under_k2), Some(only(&k2).sealing_id()));
        for (sealed, opener) in [
            (&under_k1, &both),
            (&under_k2, &both),
            (&under_k2, &only(&k2)),
        ] {
            let opened = opener.unseal(user, Generation::FIRST, sealed).unwrap();
            assert_eq!(opened.expose(), secret.expose());
        }
        match only(&k1).unseal(user, Generation::FIRST, &under_k2) {
            Err(SecretError::UnknownKey(id)) => assert_eq!(id, only(&k2).sealing_id()),
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert!(!only(&k1).names_a_listed_key(&under_k2));
        assert!(both.names_a_listed_key(&under_k2));

        // A value sealed before key ids (nonce first, no header) opens under
        // whichever listed key sealed it.
        let legacy = &under_k1[HEADER_LEN..];
        assert_eq!(KeyId::of(legacy), None);
        assert!(both.unseal(user, Generation::FIRST, legacy).is_ok());
        assert!(only(&k2).unseal(user, Generation::FIRST, legacy).is_err());
    }

    #[test]
    fn a_key_list_is_checked_and_never_echoed() {
        let k1 = MasterKey::generate_base64().unwrap();
        for (list, complaint) in [
            (format!("{},{}", *k1, *k1), "repeats"),
            (",\n ,".to_owned(), "empty"),
            (format!("{},not-base64", *k1), "key 2 of the list"),
        ] {
            let error = MasterKey::from_base64(&list).unwrap_err().to_string();
            assert!(error.contains(complaint), "{error}");
            assert!(!error.contains(k1.as_str()), "{error}");
        }
    }

    #[test]
    fn secrets_are_random_and_never_printed() {
        let (a, b) = (
            UserSecret::generate().unwrap(),
            UserSecret::generate().unwrap(),
        );
        assert_ne!(a.expose(), b.expose());
        assert_eq!(format!("{a:?}"), "UserSecret(<redacted>)");
        assert_eq!(format!("{:?}", key()), "MasterKey(<redacted>)");
    }

    #[test]
    fn master_key_must_be_32_bytes_of_base64() {
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(MasterKey::from_base64(&STANDARD.encode([0u8; 16])).is_err());
        assert!(MasterKey::from_base64(&STANDARD.encode([7u8; 32])).is_ok());
    }

    #[test]
    fn key_check_value_tells_keys_apart() {
        let (a, b) = (key(), key());
        let check = a.key_check_value().unwrap();
        assert!(a.matches_key_check_value(&check));
        assert!(!b.matches_key_check_value(&check));
    }
}
