//! Passwords: argon2id with OWASP parameters (m=19456 KiB, t=2, p=1), run off
//! the async executor on a bounded number of blocking threads, so a login
//! flood queues for CPU instead of starving token verification or exhausting
//! memory (each hash holds 19 MiB while it runs).

use std::fmt;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::ids::InvalidInput;

/// A password as typed by a user. Never printed, zeroed on drop.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 1024;

    /// Any string; for login, where a wrong password is not an input error.
    pub fn new(raw: String) -> Self {
        Self(Zeroizing::new(raw))
    }

    /// A password someone wants to set: 8 to 1024 bytes.
    pub fn parse_new(raw: String) -> Result<Self, InvalidInput> {
        let password = Self::new(raw);
        if (Self::MIN_LEN..=Self::MAX_LEN).contains(&password.0.len()) {
            Ok(password)
        } else {
            Err(InvalidInput::new("password", "must be 8 to 1024 bytes"))
        }
    }

    /// Too long to be worth hashing: refused before any work is done.
    pub fn is_over_limit(&self) -> bool {
        self.0.len() > Self::MAX_LEN
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the password hashing pool is gone")]
    PoolClosed,
    /// Every worker is busy and the queue is full.
    #[error("password hashing is at capacity")]
    Busy,
}

/// Hashes and verifies passwords on at most `workers` threads at a time.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Places for work running or waiting: workers + queue. When none is left
    /// the request is refused at once instead of piling up.
    slots: Arc<Semaphore>,
    /// Hash of a random password, verified against when the user is unknown so
    /// that an unknown username costs the same as a wrong password.
    dummy_hash: Arc<str>,
}

fn argon2id() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("OWASP argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &Password) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2id()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

fn verify_blocking(password: &Password, phc: &str) -> bool {
    // The parameters come from the stored PHC string, so hashes made with
    // older parameters keep verifying.
    PasswordHash::new(phc).is_ok_and(|parsed| {
        argon2id()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

impl PasswordHasher {
    /// Builds the pool; computes the dummy hash with the same parameters as
    /// real ones (tens of milliseconds, once).
    /// At most `workers` hashes at once and `queue` more waiting.
    pub fn new(workers: usize, queue: usize) -> Result<Self, PasswordError> {
        let mut dummy = [0u8; 32];
        rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut dummy)
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        let dummy_password = Password::new(base64::engine::general_purpose::STANDARD.encode(dummy));
        Ok(Self {
            permits: Arc::new(Semaphore::new(workers.max(1))),
            slots: Arc::new(Semaphore::new(workers.max(1) + queue)),
            dummy_hash: hash_blocking(&dummy_password)?.into(),
        })
    }

    pub async fn hash(&self, password: Password) -> Result<String, PasswordError> {
        self.run(move || hash_blocking(&password)).await?
    }

    /// Verifies `password` against `phc`, or against the dummy hash when there
    /// is no user, so both cases cost one argon2id evaluation.
    pub async fn verify(
        &self,
        password: Password,
        phc: Option<String>,
    ) -> Result<bool, PasswordError> {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self.run(move || verify_blocking(&password, &phc)).await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _slot = self.slots.try_acquire().map_err(|_| PasswordError::Busy)?;
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::PoolClosed)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| PasswordError::PoolClosed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::new(1, 8).unwrap();
        let phc = hasher
            .hash(Password::new("correct horse".into()))
            .await
            .unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            hasher
                .verify(Password::new("correct horse".into()), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(Password::new("wrong horse".into()), Some(phc))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let hasher = PasswordHasher::new(1, 8).unwrap();
        assert!(
            !hasher
                .verify(Password::new("anything".into()), None)
                .await
                .unwrap()
        );
    }

    #[test]
    fn password_length_rules() {
        assert!(Password::parse_new("1234567".into()).is_err());
        assert!(Password::parse_new("12345678".into()).is_ok());
        assert!(Password::parse_new("x".repeat(1024)).is_ok());
        assert!(Password::parse_new("x".repeat(1025)).is_err());
        assert!(Password::new("x".repeat(1025)).is_over_limit());
        assert_eq!(
            format!("{:?}", Password::new("hunter22".into())),
            "Password(<redacted>)"
        );
    }
}

#[cfg(test)]
mod queue_tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn past_the_queue_limit_work_is_refused_not_queued() {
        let hasher = PasswordHasher::new(1, 1).unwrap();
        let attempts = (0..6).map(|_| {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.verify(Password::new("x".repeat(10)), None).await })
        });
        let outcomes = futures_util::future::join_all(attempts).await;
        let busy = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(Err(PasswordError::Busy))))
            .count();
        let done = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(Ok(false))))
            .count();
        assert_eq!(busy + done, 6);
        assert!(busy >= 1 && done >= 2, "busy {busy}, done {done}");
    }
}
