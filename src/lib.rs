//! tenant-jwt: sign in the users of a multi-tenant SaaS backend and issue JWTs
//! where every user has a signing secret of their own.
//!
//! Layers: `http` (routes, extractors, problem+json) calls `domain`
//! (accounts, secrets, tokens, verification), which calls storage (`db` for
//! Postgres, `cache` for Redis). `startup` wires them from typed `config`.

pub mod cache;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod startup;
pub mod telemetry;
