//! tenant-jwt: sign in the users of a multi-tenant SaaS backend and issue JWTs
//! where every user has a signing secret of their own.
//!
//! Layers, each using only those below it (`tests/api/architecture.rs`
//! holds the tree to this): `types` (ids, names, the service-key
//! credential); `config`, `metrics`, `telemetry`, `shards` (pools split by
//! thread); storage: `db` (Postgres, the truth) and `cache` (Redis and the
//! in-process level); `domain`
//! (accounts, administration, sessions, secrets, tokens, verification),
//! which owns transactions; `http` (routes, extractors, problem+json);
//! `services` (stores opened, services wired) and `startup` (the server);
//! `cli` (commands and every setting).

pub mod cache;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod services;
pub mod shards;
pub mod startup;
pub mod telemetry;
pub mod types;
