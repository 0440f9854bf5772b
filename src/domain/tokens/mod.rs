//! Access tokens, from signing to verification, and what keeps every
//! instance's view of a user's secret current: the claims and their signing
//! (`claims`), a user's key record and its cache levels (`key_records`), the
//! hot path (`verify`) and the tokens it verified moments ago (`recent`),
//! the secret rotation every security event shares
//! (`rotation`), and the crash-consistent propagation of changed records to
//! every instance (`propagation`); what they count (`metrics`).
//!
//! Read `verify` top to bottom for the verify path; the rest is what it
//! stands on.

pub mod claims;
pub mod key_records;
pub mod metrics;
pub mod propagation;
pub mod recent;
pub mod rotation;
pub mod verify;
