//! The HTTP edge: routes, extractors and errors on the wire. Handlers are
//! thin: extract, call one domain function, map the result.
//!
//! Read bottom-up: `problem` (the one error type on the wire), `body` and
//! `form` (bodies), `limits` (governor), `state` (what handlers reach),
//! `observe` (request ids, spans, metrics, the one log line of a failure),
//! `extract` (who is calling), `handlers`, and `routes`, which lists every
//! route once, for registration and for the OpenAPI document.

pub mod body;
pub mod client_address;
pub mod connections;
pub mod console;
pub mod extract;
pub mod form;
pub mod gate;
pub mod handlers;
pub mod limits;
pub mod observe;
pub mod problem;
pub mod routes;
mod span_names;
pub mod state;
pub mod trace_context;
