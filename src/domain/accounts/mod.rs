//! Users and how they sign in: tenants and users as the domain hands them out
//! (`users`), passwords (`password`) and the bounded pool that hashes them
//! (`hashing`), sessions and refresh tokens (`sessions`), and login and
//! password changes (`login`).

pub mod hashing;
pub mod lockouts;
pub mod login;
pub mod password;
pub mod sessions;
pub mod users;
