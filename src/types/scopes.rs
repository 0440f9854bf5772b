//! What a service credential may do: each scope opens a set of routes.

use std::fmt;

use super::ids::InvalidInput;

/// One permission of a service credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
pub enum Scope {
    /// `POST /v1/introspect`.
    #[serde(rename = "introspect")]
    Introspect,
    /// `POST /v1/revoke`.
    #[serde(rename = "revoke")]
    Revoke,
    /// Reading users and their sessions.
    #[serde(rename = "users:read")]
    UsersRead,
    /// Creating, changing and deleting users; ending their sessions.
    #[serde(rename = "users:write")]
    UsersWrite,
    /// Both rotate routes.
    #[serde(rename = "secrets:rotate")]
    SecretsRotate,
    /// Audit events.
    #[serde(rename = "audit:read")]
    AuditRead,
    /// Managing service credentials.
    #[serde(rename = "credentials:write")]
    CredentialsWrite,
    /// `POST /v1/tenants`; only for credentials with no tenant.
    #[serde(rename = "tenants:write")]
    TenantsWrite,
    /// Reading roles and users' roles.
    #[serde(rename = "roles:read")]
    RolesRead,
    /// Defining roles and assigning them.
    #[serde(rename = "roles:write")]
    RolesWrite,
    /// Managing webhook endpoints and their deliveries.
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
}

impl Scope {
    pub const ALL: [Scope; 11] = [
        Scope::Introspect,
        Scope::Revoke,
        Scope::UsersRead,
        Scope::UsersWrite,
        Scope::SecretsRotate,
        Scope::AuditRead,
        Scope::CredentialsWrite,
        Scope::TenantsWrite,
        Scope::RolesRead,
        Scope::RolesWrite,
        Scope::WebhooksWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Introspect => "introspect",
            Scope::Revoke => "revoke",
            Scope::UsersRead => "users:read",
            Scope::UsersWrite => "users:write",
            Scope::SecretsRotate => "secrets:rotate",
            Scope::AuditRead => "audit:read",
            Scope::CredentialsWrite => "credentials:write",
            Scope::TenantsWrite => "tenants:write",
            Scope::RolesRead => "roles:read",
            Scope::RolesWrite => "roles:write",
            Scope::WebhooksWrite => "webhooks:write",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == raw)
            .ok_or(InvalidInput::new(
                "scopes",
                "each scope must be one of introspect, revoke, users:read, users:write, \
                 secrets:rotate, audit:read, credentials:write, tenants:write, roles:read, \
                 roles:write, webhooks:write",
            ))
    }

    /// Whether a credential bound to a tenant may hold it.
    pub fn is_tenant_scope(self) -> bool {
        self != Scope::TenantsWrite
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u16);

impl Scopes {
    pub const NONE: Scopes = Scopes(0);
    /// Every scope: the environment's root keys.
    pub const ALL: Scopes = Scopes((1 << Scope::ALL.len()) - 1);
    /// Every scope a tenant may hold: what a tenant admin's token can do.
    pub const TENANT: Scopes = Scopes(Self::ALL.0 & !(1 << Scope::TenantsWrite as u16));

    /// Parses a list of scope names: at least one, each known (a repeated
    /// one counts once).
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, InvalidInput> {
        let mut scopes = Scopes::NONE;
        for name in names {
            scopes.0 |= Scope::parse(name.as_ref())?.bit();
        }
        if scopes == Scopes::NONE {
            return Err(InvalidInput::new("scopes", "must list at least one scope"));
        }
        Ok(scopes)
    }

    /// The scopes named in `names` that this version knows: stored values
    /// are read leniently, so a scope a newer version added grants nothing.
    pub fn from_stored<S: AsRef<str>>(names: &[S]) -> Self {
        names
            .iter()
            .filter_map(|name| Scope::parse(name.as_ref()).ok())
            .fold(Scopes::NONE, |scopes, scope| Scopes(scopes.0 | scope.bit()))
    }

    /// The scopes in both.
    pub fn and(self, other: Scopes) -> Scopes {
        Scopes(self.0 & other.0)
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// The first scope of `self` that `holder` lacks, if any.
    pub fn first_outside(self, holder: Scopes) -> Option<Scope> {
        self.iter().find(|scope| !holder.contains(*scope))
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |scope| self.contains(*scope))
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }
}

/// As the list of names, in a fixed order.
impl serde::Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(Scope::as_str))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Ok(scope));
            let json = serde_json::to_value(scope).unwrap();
            assert_eq!(
                json,
                scope.as_str(),
                "the OpenAPI names are the parsed ones"
            );
        }
        assert!(Scope::parse("users").is_err());
        assert!(Scope::parse("Introspect").is_err());
    }

    #[test]
    fn lists_are_checked() {
        let scopes = Scopes::parse(&["introspect", "users:read"]).unwrap();
        assert!(scopes.contains(Scope::Introspect));
        assert!(scopes.contains(Scope::UsersRead));
        assert!(!scopes.contains(Scope::UsersWrite));
        assert_eq!(scopes.names(), ["introspect", "users:read"]);
        assert!(Scopes::parse::<&str>(&[]).is_err());
        assert_eq!(
            Scopes::parse(&["introspect", "introspect"])
                .unwrap()
                .names(),
            ["introspect"]
        );
        assert!(Scopes::parse(&["introspect", "root"]).is_err());
    }

    #[test]
    fn stored_lists_ignore_unknown_names() {
        let scopes = Scopes::from_stored(&["introspect", "something:new"]);
        assert_eq!(scopes.names(), ["introspect"]);
    }

    #[test]
    fn tenant_scopes_are_all_but_tenants_write() {
        assert_eq!(Scopes::ALL.iter().count(), 11);
        assert!(!Scopes::TENANT.contains(Scope::TenantsWrite));
        assert_eq!(Scopes::TENANT.iter().count(), 10);
        assert!(Scopes::TENANT.iter().all(Scope::is_tenant_scope));
    }

    #[test]
    fn a_grant_outside_the_holder_is_named() {
        let holder = Scopes::parse(&["introspect", "credentials:write"]).unwrap();
        let wanted = Scopes::parse(&["introspect", "users:write"]).unwrap();
        assert_eq!(wanted.first_outside(holder), Some(Scope::UsersWrite));
        assert_eq!(holder.first_outside(Scopes::ALL), None);
    }
}
