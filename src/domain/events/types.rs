//! The event types a tenant's endpoints may subscribe to, which audited
//! action reports which of them, and the body of a message: `{"type",
//! "timestamp", "data"}` with the tenant, the user, the actor and the
//! request id. The audit details are the only other content, and they never
//! hold a secret, password, key or token (see `domain::audit`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::types::ids::InvalidInput;

/// What an endpoint subscribes to: every type, or these.
pub const EVERY_TYPE: &str = "*";

/// A security event, by its stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    UserCreated,
    UserUpdated,
    UserDeleted,
    UserDisabled,
    UserSecretRotated,
    UserPasswordChanged,
    SessionRevoked,
    RefreshTokenReused,
    LoginLocked,
    CredentialCreated,
    CredentialRevoked,
    RoleCreated,
    RoleUpdated,
    RoleDeleted,
    UserRolesChanged,
}

impl EventType {
    pub const ALL: [EventType; 15] = [
        EventType::UserCreated,
        EventType::UserUpdated,
        EventType::UserDeleted,
        EventType::UserDisabled,
        EventType::UserSecretRotated,
        EventType::UserPasswordChanged,
        EventType::SessionRevoked,
        EventType::RefreshTokenReused,
        EventType::LoginLocked,
        EventType::CredentialCreated,
        EventType::CredentialRevoked,
        EventType::RoleCreated,
        EventType::RoleUpdated,
        EventType::RoleDeleted,
        EventType::UserRolesChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserCreated => "user.created",
            EventType::UserUpdated => "user.updated",
            EventType::UserDeleted => "user.deleted",
            EventType::UserDisabled => "user.disabled",
            EventType::UserSecretRotated => "user.secret_rotated",
            EventType::UserPasswordChanged => "user.password_changed",
            EventType::SessionRevoked => "session.revoked",
            EventType::RefreshTokenReused => "refresh_token.reused",
            EventType::LoginLocked => "login.locked",
            EventType::CredentialCreated => "credential.created",
            EventType::CredentialRevoked => "credential.revoked",
            EventType::RoleCreated => "role.created",
            EventType::RoleUpdated => "role.updated",
            EventType::RoleDeleted => "role.deleted",
            EventType::UserRolesChanged => "user.roles_changed",
        }
    }

    pub fn parse(raw: &str) -> Option<EventType> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }

    /// The events an audited action reports (none for most root-level and
    /// webhook actions). `details` tells a user update's kinds apart.
    pub fn for_action(action: &str, details: &Value) -> Vec<EventType> {
        let flag = |name: &str| details.get(name).and_then(Value::as_bool) == Some(true);
        match action {
            "user_created" => vec![EventType::UserCreated],
            "user_updated" => {
                let mut events = vec![EventType::UserUpdated];
                if flag("disabled") {
                    events.push(EventType::UserDisabled);
                }
                if flag("password_changed") {
                    events.push(EventType::UserPasswordChanged);
                }
                events
            }
            "user_deleted" => vec![EventType::UserDeleted],
            "secret_rotated" => vec![EventType::UserSecretRotated],
            "password_changed" => vec![EventType::UserPasswordChanged],
            // An admin or the user ending one session, or the user ending all.
            "session_revoked" | "ended_by_user" | "logout_all" => vec![EventType::SessionRevoked],
            "refresh_token_reused" => vec![EventType::RefreshTokenReused],
            "login_locked" => vec![EventType::LoginLocked],
            "credential_created" => vec![EventType::CredentialCreated],
            "credential_revoked" => vec![EventType::CredentialRevoked],
            "role_created" => vec![EventType::RoleCreated],
            "role_updated" => vec![EventType::RoleUpdated],
            "role_deleted" => vec![EventType::RoleDeleted],
            "user_roles_changed" => vec![EventType::UserRolesChanged],
            _ => Vec::new(),
        }
    }
}

/// What an endpoint subscribes to, parsed: 1 to 50 known types, or `["*"]`;
/// kept once each, in the order of [`EventType::ALL`].
pub fn subscription<S: AsRef<str>>(raw: &[S]) -> Result<Vec<String>, InvalidInput> {
    if raw.is_empty() || raw.len() > 50 {
        return Err(InvalidInput::new(
            "events",
            "list 1 to 50 event types, or \"*\"",
        ));
    }
    if raw.iter().any(|t| t.as_ref() == EVERY_TYPE) {
        return if raw.iter().all(|t| t.as_ref() == EVERY_TYPE) {
            Ok(vec![EVERY_TYPE.to_owned()])
        } else {
            Err(InvalidInput::new("events", "\"*\" stands alone"))
        };
    }
    let mut types = raw
        .iter()
        .map(|t| EventType::parse(t.as_ref()))
        .collect::<Option<Vec<_>>>()
        .ok_or(InvalidInput::new(
            "events",
            "each must be a known event type (see the README)",
        ))?;
    types.sort_by_key(|t| EventType::ALL.iter().position(|a| a == t));
    types.dedup();
    Ok(types.into_iter().map(|t| t.as_str().to_owned()).collect())
}

/// Who and what a message reports, beside its type.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub tenant_id: uuid::Uuid,
    pub user_id: Option<uuid::Uuid>,
    pub actor_kind: &'a str,
    pub actor_id: &'a str,
    pub request_id: Option<&'a str>,
    pub details: &'a Value,
}

/// The body sent, exactly as signed.
pub fn body(event: EventType, at: DateTime<Utc>, subject: &Subject<'_>) -> String {
    json!({
        "type": event.as_str(),
        "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": {
            "tenant_id": subject.tenant_id,
            "user_id": subject.user_id,
            "actor": { "kind": subject.actor_kind, "id": subject.actor_id },
            "request_id": subject.request_id,
            "details": subject.details,
        },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for event in EventType::ALL {
            assert_eq!(EventType::parse(event.as_str()), Some(event));
        }
        let mut names: Vec<_> = EventType::ALL.iter().map(|e| e.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
    }

    #[test]
    fn subscriptions_are_checked() {
        assert_eq!(subscription(&["*"]).unwrap(), ["*"]);
        assert_eq!(
            subscription(&["role.created", "user.created", "role.created"]).unwrap(),
            ["user.created", "role.created"]
        );
        assert!(subscription::<&str>(&[]).is_err());
        assert!(subscription(&["user.exploded"]).is_err());
        assert!(subscription(&["*", "user.created"]).is_err());
        assert!(subscription(&vec!["user.created"; 51]).is_err());
    }

    #[test]
    fn a_user_update_reports_what_it_did() {
        let details = json!({ "disabled": true, "password_changed": true });
        assert_eq!(
            EventType::for_action("user_updated", &details),
            [
                EventType::UserUpdated,
                EventType::UserDisabled,
                EventType::UserPasswordChanged
            ]
        );
        let enabled = json!({ "disabled": false, "password_changed": false });
        assert_eq!(
            EventType::for_action("user_updated", &enabled),
            [EventType::UserUpdated]
        );
        assert!(EventType::for_action("webhook_created", &Value::Null).is_empty());
    }

    #[test]
    fn the_body_names_who_and_what() {
        let details = json!({ "sessions_revoked": 2 });
        let subject = Subject {
            tenant_id: uuid::Uuid::nil(),
            user_id: None,
            actor_kind: "system",
            actor_id: "tenant-jwt",
            request_id: Some("req-1"),
            details: &details,
        };
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let body: Value =
            serde_json::from_str(&body(EventType::RefreshTokenReused, at, &subject)).unwrap();
        assert_eq!(body["type"], "refresh_token.reused");
        assert_eq!(body["timestamp"], "2023-11-14T22:13:20.000Z");
        assert_eq!(body["data"]["actor"]["kind"], "system");
        assert_eq!(body["data"]["request_id"], "req-1");
        assert_eq!(body["data"]["details"]["sessions_revoked"], 2);
    }
}
