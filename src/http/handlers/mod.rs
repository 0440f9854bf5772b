//! Route handlers, one module per resource. Each is thin: extract, call one
//! domain function, map the result.

pub mod account;
pub mod audit;
pub mod authz;
pub mod credentials;
pub mod event_types;
pub mod forward_auth;
pub mod grammar_schemas;
pub mod health;
pub mod introspect;
pub mod me;
pub mod page;
pub mod roles;
pub mod sessions;
pub mod tenants;
pub mod user_sessions;
pub mod users;
pub mod webhooks;
