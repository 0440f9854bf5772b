//! Per-user signing secrets and the master key that encrypts them at rest.
//!
//! A user secret is 32 bytes from the OS CSPRNG, one per user per generation.
//! Postgres and Redis only ever hold it sealed with XChaCha20-Poly1305 under
//! the master key, with the user id and generation as associated data: a
//! ciphertext copied onto another user's row (or another generation) does not
//! open, and a dump of either store alone cannot sign a token.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

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
/// Length of a sealed user secret: nonce || ciphertext || tag.
pub const SEALED_LEN: usize = NONCE_LEN + SECRET_LEN + TAG_LEN;

const USER_SECRET_AAD: &[u8] = b"tenant-jwt/user-secret/v1";
const KEY_CHECK_AAD: &[u8] = b"tenant-jwt/master-key-check/v1";
const KEY_CHECK_PLAINTEXT: &[u8] = b"tenant-jwt master key check";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the OS random number generator failed: {0}")]
    Rng(String),
    #[error("a sealed secret did not open under the master key")]
    Unseal,
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

/// The 32-byte key that seals every user secret. Never printed; the cipher
/// zeroes its copy of the key on drop.
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Parses the base64 form used by `TENANT_JWT_MASTER_KEY` and key files.
    pub fn from_base64(encoded: &str) -> Result<Self, SecretError> {
        let bytes = Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| {
            SecretError::MasterKey("must be standard base64 of exactly 32 bytes".into())
        })?);
        let key: &[u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            SecretError::MasterKey(format!(
                "must decode to exactly 32 bytes, got {}",
                bytes.len()
            ))
        })?;
        Ok(Self::from_bytes(key))
    }

    fn from_bytes(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// A fresh random key, in base64, for a new key file or for an operator.
    pub fn generate_base64() -> Result<Zeroizing<String>, SecretError> {
        Ok(Zeroizing::new(STANDARD.encode(*random_bytes::<32>()?)))
    }

    /// Reads the key file at `path`, or creates it (mode 0600) with a new
    /// random key if it does not exist. Returns the key and whether it was
    /// created. Two processes racing to create it end up with the same key:
    /// the loser of `create_new` reads the winner's file.
    pub fn load_or_create_file(path: &Path) -> Result<(Self, bool), SecretError> {
        let key_file_error = |source| SecretError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match Self::read_file(path) {
            Ok(key) => return Ok((key, false)),
            Err(SecretError::KeyFile { source, .. })
                if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(key_file_error)?;
        }
        let encoded = Self::generate_base64()?;
        let created = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Ok(mut file) => {
                file.write_all(format!("{}\n", encoded.as_str()).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(key_file_error)?;
                Ok((Self::from_base64(&encoded)?, true))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Ok((Self::read_file(path)?, false))
            }
            Err(e) => Err(key_file_error(e)),
        }
    }

    fn read_file(path: &Path) -> Result<Self, SecretError> {
        let key_file_error = |source| SecretError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        let metadata = fs::metadata(path).map_err(key_file_error)?;
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "master key file is readable by group or others; chmod 600 it"
            );
        }
        let contents = Zeroizing::new(fs::read_to_string(path).map_err(key_file_error)?);
        Self::from_base64(&contents)
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

    fn seal_with_aad(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
        let nonce = random_bytes::<NONCE_LEN>()?;
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(nonce.as_ref()),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| SecretError::Unseal)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    fn open_with_aad(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::Unseal);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher
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

    #[test]
    fn key_file_is_created_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/master.key");
        let (first, created) = MasterKey::load_or_create_file(&path).unwrap();
        assert!(created);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (second, created_again) = MasterKey::load_or_create_file(&path).unwrap();
        assert!(!created_again);
        let user = UserId::generate();
        let sealed = first
            .seal(user, Generation::FIRST, &UserSecret::generate().unwrap())
            .unwrap();
        assert!(second.unseal(user, Generation::FIRST, &sealed).is_ok());
    }

    #[test]
    fn corrupt_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(&path, "garbage").unwrap();
        assert!(MasterKey::load_or_create_file(&path).is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "garbage");
    }
}
