//! A tenant's authorization view: its roles (each pattern set indexed) and
//! who holds them, as of one `authz_version`. Built from rows read in one
//! transaction, then only read: a check is a few hash lookups per role the
//! user holds. Free of I/O.

use std::collections::HashMap;

use smallvec::SmallVec;

use super::effective::{Decision, Effective, Require};
use super::grammar::{Pattern, Permission, RoleName};
use crate::types::ids::{RoleId, UserId};

struct ViewRole {
    name: RoleName,
    effective: Effective,
    /// The patterns as written, sorted (for answers that list them).
    listed: Box<[Box<str>]>,
}

/// A tenant's roles and assignments at `version`.
pub struct TenantView {
    pub version: i64,
    roles: Vec<ViewRole>,
    /// Each user's roles, as indices into `roles`, sorted by name.
    held: HashMap<UserId, SmallVec<[u16; 4]>>,
}

/// What one user holds, borrowed from a view.
pub struct Holder<'v> {
    view: &'v TenantView,
    roles: &'v [u16],
}

impl TenantView {
    /// The view of `roles` (id, name, patterns) and `assignments` (user,
    /// role id); an assignment to a role not listed is ignored.
    pub fn new(
        version: i64,
        roles: Vec<(RoleId, RoleName, Vec<Pattern>)>,
        assignments: impl IntoIterator<Item = (UserId, RoleId)>,
    ) -> Self {
        let mut roles = roles;
        roles.sort_by(|a, b| a.1.cmp(&b.1));
        let index: HashMap<RoleId, u16> = roles
            .iter()
            .enumerate()
            .filter_map(|(at, (id, ..))| Some((*id, u16::try_from(at).ok()?)))
            .collect();
        let mut held: HashMap<UserId, SmallVec<[u16; 4]>> = HashMap::new();
        for (user, role) in assignments {
            if let Some(at) = index.get(&role) {
                held.entry(user).or_default().push(*at);
            }
        }
        for roles in held.values_mut() {
            roles.sort_unstable();
        }
        Self {
            version,
            roles: roles
                .into_iter()
                .map(|(_, name, patterns)| {
                    let effective = Effective::of(&patterns);
                    let patterns = effective.patterns();
                    ViewRole {
                        name,
                        listed: patterns.iter().map(|p| p.to_string().into()).collect(),
                        effective,
                    }
                })
                .collect(),
            held,
        }
    }

    pub fn holder(&self, user: UserId) -> Holder<'_> {
        Holder {
            view: self,
            roles: self.held.get(&user).map_or(&[], |roles| roles.as_slice()),
        }
    }

    /// Roles and assignments held (for the memory figures).
    pub fn size(&self) -> (usize, usize) {
        (self.roles.len(), self.held.values().map(|r| r.len()).sum())
    }
}

impl<'v> Holder<'v> {
    fn roles(&self) -> impl Iterator<Item = &'v ViewRole> + use<'v> {
        let view = self.view;
        self.roles
            .iter()
            .map(move |at| &view.roles[usize::from(*at)])
    }

    pub fn role_names(&self) -> Vec<&'v RoleName> {
        self.roles().map(|role| &role.name).collect()
    }

    /// The user's effective permissions: their roles' patterns, sorted,
    /// each once.
    pub fn permissions(&self) -> Vec<&'v str> {
        let mut listed: Vec<&str> = self
            .roles()
            .flat_map(|role| role.listed.iter().map(|p| &**p))
            .collect();
        if self.roles.len() > 1 {
            listed.sort_unstable();
            listed.dedup();
        }
        listed
    }

    pub fn allows(&self, permission: &Permission) -> bool {
        self.roles().any(|role| role.effective.allows(permission))
    }

    /// The check: every permission asked (or any of them) held.
    pub fn decide<'a>(&self, asked: &'a [Permission], require: Require) -> Decision<'a> {
        Decision::given(asked, require, |p| self.allows(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, patterns: &[&str]) -> (RoleId, RoleName, Vec<Pattern>) {
        (
            RoleId::generate(),
            RoleName::parse(name).unwrap(),
            patterns
                .iter()
                .map(|p| Pattern::parse(p).unwrap())
                .collect(),
        )
    }

    fn asked(raw: &[&str]) -> Vec<Permission> {
        raw.iter().map(|p| Permission::parse(p).unwrap()).collect()
    }

    #[test]
    fn a_user_is_granted_the_union_of_their_roles() {
        let (approver, reader) = (
            role("approver", &["reports:*", "invoices:approve"]),
            role("reader", &["reports:*"]),
        );
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let assignments = [(alice, approver.0), (alice, reader.0), (bob, reader.0)];
        let view = TenantView::new(7, vec![reader, approver], assignments);
        let question = asked(&["invoices:approve", "reports:q1"]);
        let alice = view.holder(alice);
        assert!(alice.decide(&question, Require::All).allowed);
        assert_eq!(
            alice
                .role_names()
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>(),
            ["approver", "reader"]
        );
        assert_eq!(alice.permissions(), ["invoices:approve", "reports:*"]);
        let bob = view.holder(bob);
        let all = bob.decide(&question, Require::All);
        assert!(!all.allowed);
        assert_eq!(all.missing, vec![&question[0]]);
        assert!(bob.decide(&question, Require::Any).allowed);
        let nobody = view.holder(UserId::generate());
        assert!(!nobody.decide(&question, Require::Any).allowed);
        assert!(nobody.role_names().is_empty() && nobody.permissions().is_empty());
        assert_eq!(view.size(), (2, 3));
    }

    #[test]
    fn an_assignment_to_an_unknown_role_grants_nothing() {
        let user = UserId::generate();
        let view = TenantView::new(1, vec![], [(user, RoleId::generate())]);
        assert!(view.holder(user).role_names().is_empty());
    }
}
