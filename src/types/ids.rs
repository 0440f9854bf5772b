//! Identifiers and validated input values. Each type is built by `parse()`
//! (or from a trusted database value) so the rest of the code never sees an
//! unchecked string, and a tenant id can never be passed where a user id goes.

use std::fmt;

use compact_str::CompactString;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use diesel_derive_newtype::DieselNewType;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why an input value was refused; `field` names it on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct InvalidInput {
    pub field: &'static str,
    pub reason: &'static str,
}

impl InvalidInput {
    pub fn new(field: &'static str, reason: &'static str) -> Self {
        Self { field, reason }
    }
}

macro_rules! uuid_newtype {
    ($(#[$meta:meta])* $name:ident, $field:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, DieselNewType)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7: 74 random bits, index friendly).
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
                Uuid::try_parse(raw)
                    .map(Self)
                    .map_err(|_| InvalidInput::new($field, "must be a UUID"))
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_newtype!(
    /// A tenant's id.
    TenantId,
    "tenant_id"
);
uuid_newtype!(
    /// A user's id; the `sub` claim of every token.
    UserId,
    "user_id"
);
uuid_newtype!(
    /// A token's id; the `jti` claim.
    TokenId,
    "jti"
);
uuid_newtype!(
    /// A login session (a refresh-token family); the `sid` claim.
    SessionId,
    "sid"
);
uuid_newtype!(
    /// A stored service credential.
    CredentialId,
    "credential_id"
);
uuid_newtype!(
    /// A tenant's role (the API names roles by their name).
    RoleId,
    "role_id"
);
uuid_newtype!(
    /// A tenant's webhook endpoint.
    WebhookId,
    "webhook_id"
);
uuid_newtype!(
    /// A webhook message; `msg_` and its hex digits on the wire (`webhook-id`).
    MessageId,
    "message_id"
);

/// A secret generation of one user; the `kid` header of every token.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, DieselNewType,
)]
#[serde(transparent)]
pub struct Generation(i64);

impl Generation {
    pub const FIRST: Generation = Generation(1);

    /// Parses a `kid`: plain decimal digits, no sign, no leading zero.
    pub fn parse_kid(kid: &str) -> Result<Self, InvalidInput> {
        let invalid = || InvalidInput::new("kid", "must be a positive decimal generation");
        let well_formed = !kid.is_empty()
            && kid.len() <= 18
            && kid.bytes().all(|b| b.is_ascii_digit())
            && !kid.starts_with('0');
        if !well_formed {
            return Err(invalid());
        }
        kid.parse().map(Generation).map_err(|_| invalid())
    }

    /// A generation known to be positive (stored ones are, by a CHECK).
    pub fn from_db(value: i64) -> Self {
        Generation(value)
    }

    pub fn get(self) -> i64 {
        self.0
    }

    pub fn next(self) -> Self {
        Generation(self.0 + 1)
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A tenant's URL name: lowercase `[a-z0-9-]`, 1 to 63 characters. Held
/// by every cached key record: up to 24 bytes it needs no allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
#[serde(transparent)]
pub struct TenantSlug(CompactString);

impl TenantSlug {
    pub const MAX_LEN: usize = 63;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let ok = (1..=Self::MAX_LEN).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(raw.into()))
        } else {
            Err(InvalidInput::new(
                "slug",
                "must be 1 to 63 characters of lowercase a-z, 0-9 and '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant's display name: 1 to 200 characters, no control characters, no
/// whitespace at either end (refused, not trimmed, so that the OpenAPI
/// pattern and this rule accept exactly the same names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
#[serde(transparent)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        display_name(raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A service credential's name, by the same rules as a tenant's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
#[serde(transparent)]
pub struct CredentialName(String);

impl CredentialName {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        display_name(raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 1 to 200 characters, no control characters, no whitespace at either end.
fn display_name(raw: &str) -> Result<String, InvalidInput> {
    let chars = raw.chars().count();
    let padded = raw.starts_with(char::is_whitespace) || raw.ends_with(char::is_whitespace);
    if !(1..=200).contains(&chars) || padded || raw.chars().any(char::is_control) {
        return Err(InvalidInput::new(
            "name",
            "must be 1 to 200 characters without control characters or whitespace at either end",
        ));
    }
    Ok(raw.to_owned())
}

/// A username, unique per tenant without regard to case. ASCII only
/// (letters, digits and `._@+-`, 1 to 128 characters) so that case folding
/// means the same thing in Rust, in Postgres and under every collation.
/// Up to 24 bytes it needs no allocation (every cached key record has one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
#[serde(transparent)]
pub struct Username(CompactString);

impl Username {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let ok = (1..=Self::MAX_LEN).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b));
        if ok {
            Ok(Self(raw.into()))
        } else {
            Err(InvalidInput::new(
                "username",
                "must be 1 to 128 characters of A-Z, a-z, 0-9 and ._@+-",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a user may do inside their tenant. Stored as its name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    AsExpression,
    FromSqlRow,
    utoipa::ToSchema,
)]
#[diesel(sql_type = Text)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Admin,
}

impl Role {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        match raw {
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            _ => Err(InvalidInput::new("role", "must be 'member' or 'admin'")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text columns read back through `parse`: a stored value that breaks the
/// rules fails to load (a deserialisation error) rather than pass unchecked.
macro_rules! text_column {
    ($($name:ident),+) => {$(
        impl ToSql<Text, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
            }
        }

        impl FromSql<Text, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                let raw = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
                Ok($name::parse(&raw)?)
            }
        }
    )+};
}

text_column!(TenantSlug, TenantName, CredentialName, Username, Role);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_accepts_lowercase_digits_and_hyphen() {
        for ok in ["a", "acme", "acme-2", "0", &"a".repeat(63)] {
            assert!(TenantSlug::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn slug_rejects_everything_else() {
        for bad in ["", "Acme", "ac me", "acme_", "acmé", "a/b", &"a".repeat(64)] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn username_rules() {
        assert!(Username::parse("Alice.Smith+test@example.com").is_ok());
        assert!(Username::parse(&"x".repeat(128)).is_ok());
        for bad in [
            "",
            " alice",
            "alice bob",
            "ålice",
            "a\u{0}",
            &"x".repeat(129),
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tenant_name_is_bounded_and_refuses_padding() {
        assert_eq!(TenantName::parse("Acme Inc").unwrap().as_str(), "Acme Inc");
        assert!(
            TenantName::parse("  Acme Inc ").is_err(),
            "refused, not trimmed"
        );
        assert!(TenantName::parse("Acme\u{3000}").is_err(), "any whitespace");
        assert!(TenantName::parse("   ").is_err());
        assert!(TenantName::parse("").is_err());
        assert!(TenantName::parse("a\nb").is_err());
        assert!(TenantName::parse(&"é".repeat(200)).is_ok());
        assert!(TenantName::parse(&"é".repeat(201)).is_err());
    }

    #[test]
    fn kid_is_a_plain_positive_decimal() {
        assert_eq!(Generation::parse_kid("1").unwrap(), Generation::FIRST);
        assert_eq!(Generation::parse_kid("42").unwrap().get(), 42);
        for bad in [
            "",
            "0",
            "01",
            "-1",
            "+1",
            "1.0",
            " 1",
            "1e3",
            "abc",
            "9999999999999999999",
        ] {
            assert!(Generation::parse_kid(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn role_round_trips() {
        for role in [Role::Member, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()).unwrap(), role);
        }
        assert!(Role::parse("Admin").is_err());
        assert!(Role::parse("owner").is_err());
    }

    #[test]
    fn ids_parse_uuids_only() {
        let id = UserId::generate();
        assert_eq!(UserId::parse(&id.to_string()).unwrap(), id);
        assert!(UserId::parse("not-a-uuid").is_err());
        assert!(UserId::parse("").is_err());
    }
}
