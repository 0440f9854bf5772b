//! The master key and what it seals: per-user signing secrets sealed at rest
//! (`secrets`), the key file used when no key is configured (`file`), and
//! online master key rotation: status, the start-up check and the rewrap
//! (`rewrap`).

pub mod endpoint_secrets;
pub mod file;
pub mod rewrap;
pub mod secrets;
