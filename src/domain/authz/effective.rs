//! A user's effective permissions, the union of their roles' patterns,
//! indexed so that a check costs a few hash lookups whatever the number of
//! patterns; and the decision a check answers. Free of I/O.

use std::collections::HashSet;

use serde::Deserialize;

use super::grammar::{Pattern, Permission};

/// The union of a user's patterns, indexed for `allows`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effective {
    everything: bool,
    exact: HashSet<Permission>,
    /// The prefixes of `p:*` patterns, as `p:`.
    under: HashSet<String>,
}

impl Effective {
    pub fn of<'p>(patterns: impl IntoIterator<Item = &'p Pattern>) -> Self {
        let mut effective = Self::default();
        for pattern in patterns {
            match pattern {
                Pattern::Everything => effective.everything = true,
                Pattern::Under(prefix) => {
                    effective.under.insert(prefix.clone());
                }
                Pattern::Exactly(permission) => {
                    effective.exact.insert(permission.clone());
                }
            }
        }
        effective
    }

    /// Whether any pattern grants `permission`: `*`, the permission itself,
    /// or `p:*` for one of its proper prefixes `p`.
    pub fn allows(&self, permission: &Permission) -> bool {
        let text = permission.as_str();
        self.everything
            || self.exact.contains(permission)
            || text
                .match_indices(':')
                .any(|(at, _)| self.under.contains(&text[..=at]))
    }

    /// The patterns, sorted (for answers and audit events).
    pub fn patterns(&self) -> Vec<Pattern> {
        let mut patterns: Vec<Pattern> = self
            .everything
            .then_some(Pattern::Everything)
            .into_iter()
            .chain(self.under.iter().cloned().map(Pattern::Under))
            .chain(self.exact.iter().cloned().map(Pattern::Exactly))
            .collect();
        patterns.sort_by_key(ToString::to_string);
        patterns
    }
}

/// Whether a check needs every permission asked about, or one of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Require {
    #[default]
    All,
    Any,
}

/// What a check answers: allowed or not, and the permissions asked about
/// that the user does not hold (in the order asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    pub allowed: bool,
    pub missing: Vec<&'a Permission>,
}

impl<'a> Decision<'a> {
    /// The decision on `asked` when `held` says which are held.
    pub fn given(
        asked: &'a [Permission],
        require: Require,
        held: impl Fn(&Permission) -> bool,
    ) -> Self {
        let missing: Vec<&Permission> = asked.iter().filter(|p| !held(p)).collect();
        let allowed = match require {
            Require::All => missing.is_empty(),
            Require::Any => missing.len() < asked.len(),
        };
        Decision { allowed, missing }
    }
}

pub fn decide<'a>(
    effective: &Effective,
    asked: &'a [Permission],
    require: Require,
) -> Decision<'a> {
    Decision::given(asked, require, |p| effective.allows(p))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn patterns(raw: &[&str]) -> Vec<Pattern> {
        raw.iter().map(|p| Pattern::parse(p).unwrap()).collect()
    }

    fn asked(raw: &[&str]) -> Vec<Permission> {
        raw.iter().map(|p| Permission::parse(p).unwrap()).collect()
    }

    #[test]
    fn all_needs_every_permission_and_any_one_of_them() {
        let held = patterns(&["invoices:*", "reports:read"]);
        let effective = Effective::of(&held);
        let question = asked(&["invoices:approve", "reports:write", "reports:read"]);
        let all = decide(&effective, &question, Require::All);
        assert!(!all.allowed);
        assert_eq!(all.missing, vec![&question[1]]);
        let any = decide(&effective, &question, Require::Any);
        assert!(any.allowed);
        assert_eq!(
            any.missing,
            vec![&question[1]],
            "missing is said either way"
        );
        let none = asked(&["billing:read"]);
        assert!(!decide(&effective, &none, Require::Any).allowed);
        assert!(decide(&Effective::of(&patterns(&["*"])), &question, Require::All).allowed);
    }

    #[test]
    fn patterns_come_back_sorted_once_each() {
        let effective = Effective::of(&patterns(&["b:*", "a", "*", "a", "b:*"]));
        let shown: Vec<String> = effective
            .patterns()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["*", "a", "b:*"]);
    }

    fn pattern_strategy() -> impl Strategy<Value = String> {
        let permission = proptest::collection::vec("[ab][ab]{0,1}", 1..4).prop_map(|s| s.join(":"));
        prop_oneof![
            1 => Just("*".to_owned()),
            4 => permission.clone().prop_map(|p| format!("{p}:*")),
            6 => permission,
        ]
    }

    proptest! {
        #![proptest_config(crate::fuzzing::properties::config("tests/proptest-regressions/authz-effective.txt"))]

        /// The index answers exactly what the patterns' own definition does.
        #[test]
        fn the_index_agrees_with_the_patterns(
            held in proptest::collection::vec(pattern_strategy(), 0..8),
            question in proptest::collection::vec(
                proptest::collection::vec("[ab][ab]{0,1}", 1..5).prop_map(|s| s.join(":")),
                1..6,
            ),
        ) {
            let held: Vec<Pattern> = held.iter().map(|p| Pattern::parse(p).unwrap()).collect();
            let effective = Effective::of(&held);
            let question: Vec<Permission> =
                question.iter().map(|p| Permission::parse(p).unwrap()).collect();
            for permission in &question {
                prop_assert_eq!(
                    effective.allows(permission),
                    held.iter().any(|p| p.matches(permission)),
                    "{}", permission
                );
            }
            let all = decide(&effective, &question, Require::All);
            prop_assert_eq!(all.allowed, question.iter().all(|p| held.iter().any(|h| h.matches(p))));
            let any = decide(&effective, &question, Require::Any);
            prop_assert_eq!(any.allowed, question.iter().any(|p| held.iter().any(|h| h.matches(p))));
        }
    }
}
