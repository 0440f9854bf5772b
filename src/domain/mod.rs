//! The domain layer: what tenant-jwt does, apart from HTTP and storage. It
//! owns transactions and calls storage (`db`, `cache`); it knows nothing of
//! HTTP. One folder per capability, each with a module doc saying what it
//! owns, so the tree reads like the feature list:
//!
//! - `keys`: the master key, per-user secrets sealed under it, its rotation;
//! - `tokens`: access tokens, key records, verification (the hot path),
//!   secret rotation and its propagation to every instance;
//! - `accounts`: users, passwords, sessions and login;
//! - `credentials`: who a service call comes from (root keys, stored
//!   credentials);
//! - `admin`: tenant administration, for services and tenant admins;
//! - `authz`: live roles and permissions: the grammar, the check, roles and
//!   who holds them.
//!
//! Shared by all of them: `error` (the layer's one error type), `audit` (who
//! acted, written with each change) and `page` (keyset pagination).

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod authz;
pub mod credentials;
pub mod error;
pub mod events;
pub mod keys;
pub mod page;
#[cfg(any(test, feature = "fuzzing"))]
pub mod sample;
pub mod tokens;
pub mod webhooks;

pub use error::DomainError;
