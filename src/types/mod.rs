//! Leaf types every layer may use (storage, domain, HTTP, settings): ids,
//! validated names, the service-key credential and the database URL.
//! Nothing here imports another module of the crate.

pub mod database_url;
pub mod ids;
pub mod scopes;
pub mod service_keys;
