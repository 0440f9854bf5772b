//! Live roles and permissions: each tenant's own authorization model,
//! resolved at check time from the current state, never frozen in tokens.
//!
//! - `grammar`: role names, permissions and the patterns roles grant,
//!   parsed once (pure, property-tested);
//! - `effective`: a user's effective permissions (the union of their roles'
//!   patterns) indexed for checks, and the decision a check answers (pure).
//!
//! Storage of roles and assignments, the tenant's authorization version and
//! its propagation build on these.

pub mod effective;
pub mod grammar;
