//! The domain layer: accounts, administration, sessions, secrets, tokens and
//! their verification. It owns transactions and calls storage (`db`,
//! `cache`); it knows nothing of HTTP.
//!
//! Read bottom-up: `error`, `secrets`, `password` and `page` stand alone;
//! `key_records` (what verification needs of a user) and `tokens` build on
//! them; `verify` is the hot path; `users`, `audit` and `rotation` are the
//! shared pieces of every change; `sessions`, `accounts` (login) and `admin`
//! are the services the HTTP edge and the CLI call.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod credentials;
pub mod error;
pub mod key_file;
pub mod key_records;
pub mod keys;
pub mod page;
pub mod password;
pub mod propagation;
pub mod rotation;
#[cfg(any(test, feature = "fuzzing"))]
pub mod sample;
pub mod secrets;
pub mod sessions;
pub mod tokens;
pub mod users;
pub mod verify;

pub use error::DomainError;
