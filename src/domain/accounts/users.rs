//! Tenants and users as the domain hands them out, and what it takes to
//! create or change a user.

use chrono::{DateTime, Utc};

use crate::db;
use crate::db::users::UserRow;
use crate::domain::accounts::password::Password;
use crate::types::ids::{Role, TenantId, UserId, Username};

/// A tenant, as stored.
pub type Tenant = db::tenants::TenantRow;

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub username: Username,
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

impl From<db::users::UserRow> for User {
    fn from(row: db::users::UserRow) -> Self {
        Self {
            id: row.id,
            tenant_id: row.tenant_id,
            username: row.username,
            role: row.role,
            disabled: row.disabled_at.is_some(),
            created_at: row.created_at,
        }
    }
}

/// What it takes to create a user.
pub struct NewUser {
    pub username: Username,
    pub password: Password,
    pub role: Role,
}

/// What a PATCH may change; `None` leaves it as it is.
#[derive(Debug, Default)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password: Option<Password>,
}

impl UserPatch {
    pub fn is_empty(&self) -> bool {
        self.role.is_none() && self.disabled.is_none() && self.password.is_none()
    }
}

/// What a PATCH does to a user as they are now; decided without I/O, then
/// applied by the admin's update transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdatePlan {
    /// The new role, if it differs.
    pub role: Option<Role>,
    /// The new disabled state, if it differs.
    pub disabled: Option<bool>,
    pub password: bool,
    /// An enabled admin stops being one: another must remain.
    pub removes_active_admin: bool,
    /// A role change, a new password or disabling: every token dies.
    pub rotates_secret: bool,
    /// A new password or disabling also ends every session: no refresh
    /// token may outlive it. A role change keeps them; new access tokens
    /// carry the new role.
    pub ends_sessions: bool,
}

impl UpdatePlan {
    pub fn new(
        current: &UserRow,
        role: Option<Role>,
        disabled: Option<bool>,
        password: bool,
    ) -> Self {
        let role = role.filter(|&role| role != current.role);
        let was_disabled = current.disabled_at.is_some();
        let disabled = disabled.filter(|&d| d != was_disabled);
        let stays_active_admin =
            role.unwrap_or(current.role) == Role::Admin && !disabled.unwrap_or(was_disabled);
        let disables = disabled == Some(true);
        Self {
            role,
            disabled,
            password,
            removes_active_admin: current.is_active_admin() && !stays_active_admin,
            rotates_secret: role.is_some() || password || disables,
            ends_sessions: password || disables,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ids::{TenantId, UserId, Username};

    fn user(role: Role, disabled: bool) -> UserRow {
        UserRow {
            id: UserId::generate(),
            tenant_id: TenantId::generate(),
            username: Username::parse("alice").unwrap(),
            password_hash: String::new(),
            role,
            record_version: 1,
            created_at: Utc::now(),
            disabled_at: disabled.then(Utc::now),
        }
    }

    #[test]
    fn a_patch_that_changes_nothing_rotates_nothing() {
        let plan = UpdatePlan::new(
            &user(Role::Admin, false),
            Some(Role::Admin),
            Some(false),
            false,
        );
        assert_eq!(plan.role, None, "same role is no change");
        assert_eq!(plan.disabled, None, "same state is no change");
        assert!(!plan.rotates_secret && !plan.ends_sessions && !plan.removes_active_admin);
    }

    #[test]
    fn a_role_change_rotates_but_keeps_sessions() {
        let plan = UpdatePlan::new(&user(Role::Member, false), Some(Role::Admin), None, false);
        assert_eq!(plan.role, Some(Role::Admin));
        assert!(plan.rotates_secret, "old tokens carry the old role");
        assert!(
            !plan.ends_sessions,
            "refresh gives tokens with the new role"
        );
    }

    #[test]
    fn a_password_or_disabling_ends_every_session() {
        let password = UpdatePlan::new(&user(Role::Member, false), None, None, true);
        assert!(password.rotates_secret && password.ends_sessions);
        let disable = UpdatePlan::new(&user(Role::Member, false), None, Some(true), false);
        assert!(disable.rotates_secret && disable.ends_sessions);
        let enable = UpdatePlan::new(&user(Role::Member, true), None, Some(false), false);
        assert!(
            !enable.rotates_secret && !enable.ends_sessions,
            "enabling kills nothing"
        );
    }

    #[test]
    fn only_an_active_admin_leaving_that_state_needs_another_admin() {
        let demote = UpdatePlan::new(&user(Role::Admin, false), Some(Role::Member), None, false);
        assert!(demote.removes_active_admin);
        let disable = UpdatePlan::new(&user(Role::Admin, false), None, Some(true), false);
        assert!(disable.removes_active_admin);
        let password = UpdatePlan::new(&user(Role::Admin, false), None, None, true);
        assert!(!password.removes_active_admin);
        let disabled_admin =
            UpdatePlan::new(&user(Role::Admin, true), Some(Role::Member), None, false);
        assert!(!disabled_admin.removes_active_admin, "was not active");
    }
}
