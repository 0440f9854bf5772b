//! The integration suite: one binary, real Postgres and Redis.

mod admin;
mod docs;
mod health;
mod helpers;
mod introspect;
mod login;
mod storage;
mod verification;
