//! Passwords as users type them: never printed, zeroed on drop, with the
//! length rules a new one must meet. Hashing them is `hashing`'s.

use std::fmt;

use zeroize::Zeroizing;

use crate::types::ids::InvalidInput;

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

    /// A password someone wants to set: 8 to 1024 characters.
    pub fn parse_new(raw: String) -> Result<Self, InvalidInput> {
        let password = Self::new(raw);
        if (Self::MIN_LEN..=Self::MAX_LEN).contains(&password.0.chars().count()) {
            Ok(password)
        } else {
            Err(InvalidInput::new(
                "password",
                "must be 8 to 1024 characters",
            ))
        }
    }

    /// Too long to be worth hashing: refused before any work is done.
    pub fn is_over_limit(&self) -> bool {
        // At most 4 bytes a character: a longer one is over without counting.
        self.0.len() > 4 * Self::MAX_LEN || self.0.chars().count() > Self::MAX_LEN
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_length_rules() {
        assert!(Password::parse_new("1234567".into()).is_err());
        assert!(Password::parse_new("12345678".into()).is_ok());
        assert!(Password::parse_new("x".repeat(1024)).is_ok());
        assert!(Password::parse_new("x".repeat(1025)).is_err());
        assert!(Password::new("x".repeat(1025)).is_over_limit());
        // Characters, not bytes: 1024 four-byte characters are a valid password.
        assert!(Password::parse_new("😀".repeat(1024)).is_ok());
        assert!(!Password::new("😀".repeat(1024)).is_over_limit());
        assert!(Password::new("😀".repeat(1025)).is_over_limit());
        assert!(Password::parse_new("é".repeat(7)).is_err(), "7 characters");
        assert_eq!(
            format!("{:?}", Password::new("hunter22".into())),
            "Password(<redacted>)"
        );
    }
}
