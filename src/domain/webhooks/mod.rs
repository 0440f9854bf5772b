//! Security-event webhooks, the Standard Webhooks way: a tenant's endpoints
//! (`endpoints`), the event types and message bodies (`events`), the
//! messages written with each change (`outbox`), signing (`signing`), the
//! SSRF guard (`guard`), what follows an attempt (`schedule`, pure) and the
//! worker that makes the attempts (`delivery`).

pub mod delivery;
pub mod endpoints;
pub mod events;
pub mod guard;
pub mod outbox;
pub mod schedule;
pub mod signing;
