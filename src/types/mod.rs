//! Leaf types every layer may use (storage, domain, HTTP, settings): ids,
//! validated names and the service-key credential. Nothing here imports
//! another module of the crate.

pub mod ids;
pub mod scopes;
pub mod service_keys;
