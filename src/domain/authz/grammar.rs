//! The permission grammar: role names, permissions and the patterns a role
//! grants, each parsed once (parse, don't validate) and free of I/O.
//!
//! - A segment is `[a-z0-9][a-z0-9_.-]{0,63}`; a role name is one segment.
//! - A permission is `segment(:segment)*`, at most 128 characters in all
//!   (`invoices:approve`, `billing:invoices:read`). A permission asked about
//!   is never a pattern.
//! - A pattern is a permission, a permission followed by `:*` (`invoices:*`
//!   matches `invoices:approve` and `invoices:line:edit`, not `invoices`), or
//!   `*` alone (everything); at most 128 characters. A `*` anywhere else,
//!   upper case, spaces and empty segments are refused.

use std::fmt;

use serde::Serialize;

use crate::types::ids::InvalidInput;

/// Longest permission or pattern, in characters (all ASCII).
pub const MAX_PERMISSION_LEN: usize = 128;
/// Longest segment (and role name).
pub const MAX_SEGMENT_LEN: usize = 64;

/// Whether `s` is one segment: `[a-z0-9][a-z0-9_.-]{0,63}`.
fn is_segment(s: &str) -> bool {
    let bytes = s.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && bytes.len() <= MAX_SEGMENT_LEN
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'))
}

/// Whether `s` is `segment(:segment)*` within the length limit.
fn is_permission(s: &str) -> bool {
    s.len() <= MAX_PERMISSION_LEN && s.split(':').all(is_segment)
}

/// A role's name, unique in its tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RoleName(String);

impl RoleName {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if is_segment(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidInput::new(
                "name",
                "must be 1 to 64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A permission asked about (`invoices:approve`): never a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Permission(String);

impl Permission {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if is_permission(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidInput::new(
                "permissions",
                "each must be segments of a-z, 0-9, '_', '.', '-' joined by ':', at most 128 characters, no '*'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a role grants: one permission, every permission under a prefix, or
/// everything.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pattern {
    /// `*`.
    Everything,
    /// `invoices:*`, kept as `invoices:` (what a matched permission starts with).
    Under(String),
    /// `invoices:approve`.
    Exactly(Permission),
}

impl Pattern {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let refused = || {
            InvalidInput::new(
                "permissions",
                "each must be a permission (segments of a-z, 0-9, '_', '.', '-' joined by ':'), \
                 one followed by ':*', or '*' alone; at most 128 characters",
            )
        };
        if raw == "*" {
            return Ok(Self::Everything);
        }
        if raw.len() > MAX_PERMISSION_LEN {
            return Err(refused());
        }
        match raw.strip_suffix(":*") {
            Some(prefix) if is_permission(prefix) => Ok(Self::Under(format!("{prefix}:"))),
            Some(_) => Err(refused()),
            None => Permission::parse(raw)
                .map(Self::Exactly)
                .map_err(|_| refused()),
        }
    }

    /// Whether this pattern grants `permission`.
    pub fn matches(&self, permission: &Permission) -> bool {
        match self {
            Self::Everything => true,
            Self::Under(prefix) => permission.as_str().starts_with(prefix.as_str()),
            Self::Exactly(exact) => exact == permission,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Everything => f.write_str("*"),
            Self::Under(prefix) => write!(f, "{prefix}*"),
            Self::Exactly(exact) => f.write_str(exact.as_str()),
        }
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn permission(raw: &str) -> Permission {
        Permission::parse(raw).unwrap()
    }

    #[test]
    fn accepted_and_refused_permissions() {
        for ok in [
            "invoices",
            "invoices:approve",
            "billing:invoices:read",
            "a",
            "0",
            "v1.2:x_y-z",
            &"a".repeat(64),
            &format!("{}:{}", "a".repeat(64), "b".repeat(63)),
        ] {
            assert!(Permission::parse(ok).is_ok(), "{ok} is a permission");
            assert!(Pattern::parse(ok).is_ok(), "{ok} is a pattern");
        }
        for bad in [
            "",
            ":",
            "invoices:",
            ":invoices",
            "invoices::approve",
            "Invoices",
            "invoices:Approve",
            "in voices",
            " invoices",
            "_invoices",
            ".x",
            "-x",
            "invoices:*",
            "*",
            "*:approve",
            "in*",
            "é",
            &"a".repeat(65),
            &format!("{}:{}", "a".repeat(64), "b".repeat(64)),
        ] {
            assert!(Permission::parse(bad).is_err(), "{bad:?} is no permission");
        }
        assert_eq!(
            Permission::parse("X").unwrap_err().field,
            "permissions",
            "the field is named"
        );
    }

    #[test]
    fn accepted_and_refused_patterns() {
        assert_eq!(Pattern::parse("*").unwrap(), Pattern::Everything);
        assert_eq!(
            Pattern::parse("invoices:*").unwrap(),
            Pattern::Under("invoices:".into())
        );
        assert_eq!(Pattern::parse("a:b:*").unwrap().to_string(), "a:b:*");
        for bad in [
            "**",
            "*:*",
            ":*",
            "invoices*",
            "invoices:*:approve",
            "invoices:**",
            "inv*:approve",
            "invoices:* ",
            "INVOICES:*",
            "",
            &format!("{}:*", "a:".repeat(63) + "a"),
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?} is no pattern");
        }
    }

    #[test]
    fn the_wildcard_matching_table() {
        let table = [
            ("*", "invoices", true),
            ("*", "a:b:c", true),
            ("invoices:*", "invoices:approve", true),
            ("invoices:*", "invoices:line:edit", true),
            ("invoices:*", "invoices", false),
            ("invoices:*", "invoicesx:approve", false),
            ("invoices:*", "billing:invoices:read", false),
            ("billing:*", "billing:invoices:read", true),
            ("invoices:approve", "invoices:approve", true),
            ("invoices:approve", "invoices:approve:all", false),
            ("invoices:approve", "invoices", false),
            ("invoices", "invoices:approve", false),
        ];
        for (pattern, asked, expected) in table {
            assert_eq!(
                Pattern::parse(pattern).unwrap().matches(&permission(asked)),
                expected,
                "{pattern} against {asked}"
            );
        }
    }

    #[test]
    fn role_names_are_one_segment() {
        assert!(RoleName::parse("billing-admin").is_ok());
        assert!(RoleName::parse("v2.readers_1").is_ok());
        for bad in ["", "Admin", "a:b", "a b", "-a", &"a".repeat(65)] {
            let refused = RoleName::parse(bad).unwrap_err();
            assert_eq!(refused.field, "name", "{bad:?}");
        }
    }

    /// A segment as the grammar says (letters kept few so that prefixes meet).
    fn segment() -> impl Strategy<Value = String> {
        "[ab0][ab_.-]{0,3}"
    }

    fn permission_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(segment(), 1..4).prop_map(|s| s.join(":"))
    }

    proptest! {
        #![proptest_config(crate::fuzzing::properties::config("tests/proptest-regressions/authz-grammar.txt"))]

        /// `p:*` matches exactly the permissions that start with `p:`;
        /// an exact pattern only itself; `*` everything.
        #[test]
        fn patterns_match_as_their_definition_says(
            prefix in permission_strategy(),
            asked in permission_strategy(),
        ) {
            let asked = permission(&asked);
            let under = Pattern::parse(&format!("{prefix}:*")).unwrap();
            prop_assert_eq!(
                under.matches(&asked),
                asked.as_str().starts_with(&format!("{prefix}:"))
            );
            let exact = Pattern::parse(&prefix).unwrap();
            prop_assert_eq!(exact.matches(&asked), prefix == asked.as_str());
            prop_assert!(Pattern::Everything.matches(&asked));
        }

        /// Whatever parses prints back as it was written, and any text with
        /// upper case, white space or a misplaced `*` is refused.
        #[test]
        fn parsing_round_trips_and_refuses_what_is_outside_the_grammar(raw in "[abA :*.]{0,8}") {
            if let Ok(pattern) = Pattern::parse(&raw) {
                prop_assert_eq!(pattern.to_string(), raw.clone());
                prop_assert!(!raw.contains(['A', ' ']));
                prop_assert!(raw == "*" || !raw.trim_end_matches(":*").contains('*'));
            }
            if Permission::parse(&raw).is_ok() {
                prop_assert!(!raw.contains(['A', ' ', '*']));
            }
        }
    }
}
