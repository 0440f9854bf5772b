//! The security events a change reports (`types`: names, which audited
//! action reports which, the message body) and the webhook messages written
//! with the change, in its transaction (`outbox`). Below `audit`, which hands
//! every event here; `webhooks` above delivers the messages.

pub mod outbox;
pub mod types;
