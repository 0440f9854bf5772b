//! Security-event webhooks, the Standard Webhooks way: a tenant's endpoints
//! (`endpoints`), signing (`signing`), the SSRF guard (`guard`), what
//! follows an attempt (`schedule`, pure) and the worker that makes the
//! attempts (`delivery`). The messages themselves are written with each
//! change by `events::outbox`.

pub mod delivery;
pub mod endpoints;
pub mod guard;
pub mod schedule;
pub mod signing;
