//! The domain layer: accounts, secrets, tokens and their verification. It
//! owns transactions and calls storage (`db`, `cache`); it knows nothing of HTTP.

pub mod accounts;
pub mod admin;
pub mod error;
pub mod ids;
pub mod key_records;
pub mod password;
#[doc(hidden)]
pub mod sample;
pub mod secrets;
pub mod service_keys;
pub mod sessions;
pub mod tokens;
pub mod verify;

pub use error::DomainError;
