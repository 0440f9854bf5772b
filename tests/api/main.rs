//! The integration suite: one binary, real Postgres and Redis.

mod admin;
mod administration;
mod architecture;
mod docs;
mod faults;
mod gateway;
mod hardening;
mod health;
mod helpers;
mod introspect;
mod limits;
mod local_cache;
mod login;
mod openapi;
mod operations;
mod resilience;
mod rotation;
mod self_service;
mod sessions;
mod shared_limits;
mod shutdown;
mod storage;
mod topologies;
mod verification;
