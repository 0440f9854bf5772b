//! Live roles and permissions: each tenant's own authorization model,
//! resolved at check time from the current state, never frozen in tokens.
//!
//! - `grammar`: role names, permissions and the patterns roles grant,
//!   parsed once (pure, property-tested);
//! - `effective`: a user's effective permissions (the union of their roles'
//!   patterns) indexed for checks, and the decision a check answers (pure);
//! - `roles`: a tenant's roles and who holds them, each change audited and
//!   moving the tenant's `authz_version` in its own transaction.

pub mod checks;
pub mod effective;
pub mod grammar;
pub mod roles;
pub mod view;
