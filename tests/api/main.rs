//! The integration suite: one binary, real Postgres and Redis.

// The tests' futures hold a whole application's start-up (Redis pools,
// Sentinel and cluster clients): deeper than the default 128 on a clean build.
#![recursion_limit = "256"]

mod admin;
mod administration;
mod architecture;
mod auth_first;
mod console;
mod credentials;
mod docs;
mod failover;
mod faults;
mod gateway;
mod hardening;
mod health;
mod helpers;
mod introspect;
mod limits;
mod local_cache;
mod login;
mod master_keys;
mod openapi;
mod operations;
mod propagation;
mod resilience;
mod roles;
mod rotation;
mod self_service;
mod sessions;
mod shared_limits;
mod shutdown;
mod storage;
mod topologies;
mod traces;
mod verification;
mod webhooks;
