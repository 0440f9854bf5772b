//! The event types of webhooks as OpenAPI lists them: the domain's names
//! (`domain::events::types`), held to them by a test.

use serde::Serialize;
use utoipa::ToSchema;

/// An event type an endpoint may subscribe to, or `*` for all of them.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Only its schema is used.
pub enum EventTypeItem {
    #[serde(rename = "*")]
    Every,
    #[serde(rename = "user.created")]
    UserCreated,
    #[serde(rename = "user.updated")]
    UserUpdated,
    #[serde(rename = "user.deleted")]
    UserDeleted,
    #[serde(rename = "user.disabled")]
    UserDisabled,
    #[serde(rename = "user.secret_rotated")]
    UserSecretRotated,
    #[serde(rename = "user.password_changed")]
    UserPasswordChanged,
    #[serde(rename = "session.revoked")]
    SessionRevoked,
    #[serde(rename = "refresh_token.reused")]
    RefreshTokenReused,
    #[serde(rename = "login.locked")]
    LoginLocked,
    #[serde(rename = "credential.created")]
    CredentialCreated,
    #[serde(rename = "credential.revoked")]
    CredentialRevoked,
    #[serde(rename = "role.created")]
    RoleCreated,
    #[serde(rename = "role.updated")]
    RoleUpdated,
    #[serde(rename = "role.deleted")]
    RoleDeleted,
    #[serde(rename = "user.roles_changed")]
    UserRolesChanged,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::types::{EVERY_TYPE, EventType};
    use utoipa::PartialSchema;

    #[test]
    fn the_documented_types_are_the_domains() {
        let schema = serde_json::to_value(EventTypeItem::schema()).unwrap();
        let documented: Vec<String> = serde_json::from_value(schema["enum"].clone()).unwrap();
        let mut known: Vec<String> = EventType::ALL
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect();
        known.insert(0, EVERY_TYPE.to_owned());
        assert_eq!(documented, known);
    }
}
