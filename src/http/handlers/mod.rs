//! Route handlers, one module per resource.

pub mod audit;
pub mod health;
pub mod introspect;
pub mod me;
pub mod sessions;
pub mod tenants;
pub mod users;
