//! Users and how they sign in: tenants and users as the domain hands them out
//! (`users`), passwords (`password`) and the bounded pool that hashes them
//! (`hashing`), sessions and refresh tokens (`sessions`), login and
//! password changes (`login`), and the admin console's sessions (`console`).

pub mod console;
pub mod hashing;
pub mod lockouts;
pub mod login;
pub mod password;
pub mod sessions;
pub mod users;
