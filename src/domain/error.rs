//! The domain layer's one error type. The HTTP edge maps each variant to a
//! status and a stable problem code; the CLI prints it. Causes of
//! `Unavailable` and `Internal` are for logs, never for clients.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::ids::InvalidInput;
use super::password::PasswordError;
use super::secrets::SecretError;
use super::verify::Rejection;
use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The caller sent a value that can never be valid.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("{0} already exists")]
    Conflict(Conflict),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A login that did not succeed. The reason is for logs only.
    #[error("login refused: {}", .0.as_str())]
    InvalidCredentials(LoginFailure),
    /// A refresh token that cannot be exchanged. The reason is for logs only.
    #[error("refresh refused: {}", .0.as_str())]
    InvalidGrant(RefreshFailure),
    /// A token that did not verify. The reason is for logs only.
    #[error("token rejected: {}", .0.as_str())]
    InvalidToken(Rejection),
    /// A dependency (Postgres) could not be reached in time; worth retrying.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or a broken invariant.
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    TenantSlug,
    Username,
    /// The change would leave the tenant without an enabled admin.
    LastAdmin,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conflict::TenantSlug => "a tenant with this slug",
            Conflict::Username => "a user with this username",
            Conflict::LastAdmin => "the last admin of the tenant",
        })
    }
}

/// Why a login failed; every one looks the same from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Tenant slug or username not even well-formed.
    MalformedInput,
    /// Longer than any valid tenant, username or password: refused unhashed.
    InputTooLong,
    UnknownUser,
    WrongPassword,
    Disabled,
}

impl LoginFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginFailure::MalformedInput => "malformed_input",
            LoginFailure::InputTooLong => "input_too_long",
            LoginFailure::UnknownUser => "unknown_user",
            LoginFailure::WrongPassword => "wrong_password",
            LoginFailure::Disabled => "disabled",
        }
    }
}

/// Why a refresh failed; every one looks the same from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshFailure {
    Unknown,
    /// Spent before: a theft signal.
    Reused,
    Revoked,
    Expired,
    UnknownUser,
    Disabled,
    WrongTenant,
}

impl RefreshFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshFailure::Unknown => "unknown",
            RefreshFailure::Reused => "reused",
            RefreshFailure::Revoked => "revoked",
            RefreshFailure::Expired => "expired",
            RefreshFailure::UnknownUser => "unknown_user",
            RefreshFailure::Disabled => "disabled",
            RefreshFailure::WrongTenant => "wrong_tenant",
        }
    }
}

impl From<DbError> for DomainError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(_) | DbError::TimedOut(_) => {
                DomainError::Unavailable(e.to_string())
            }
            DbError::Query(e) => e.into(),
        }
    }
}

impl From<DieselError> for DomainError {
    fn from(e: DieselError) -> Self {
        match e {
            // The connection broke (diesel-async reports an I/O error or a
            // closed socket as "unable to send"): Postgres is unreachable.
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => DomainError::Unavailable(info.message().to_owned()),
            DieselError::BrokenTransactionManager => {
                DomainError::Unavailable("the connection broke mid-transaction".into())
            }
            other => DomainError::Internal(format!("database: {other}")),
        }
    }
}

impl From<SecretError> for DomainError {
    fn from(e: SecretError) -> Self {
        DomainError::Internal(e.to_string())
    }
}

impl From<PasswordError> for DomainError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Busy => DomainError::Unavailable(e.to_string()),
            other => DomainError::Internal(other.to_string()),
        }
    }
}

/// Whether a diesel error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_connection_is_unavailable_not_internal() {
        for kind in [
            DatabaseErrorKind::ClosedConnection,
            DatabaseErrorKind::UnableToSendCommand,
        ] {
            let broken = DieselError::DatabaseError(kind, Box::new("connection closed".to_owned()));
            assert!(matches!(
                DomainError::from(broken),
                DomainError::Unavailable(_)
            ));
        }
        assert!(matches!(
            DomainError::from(DieselError::BrokenTransactionManager),
            DomainError::Unavailable(_)
        ));
        let bug =
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new("syntax".to_owned()));
        assert!(matches!(DomainError::from(bug), DomainError::Internal(_)));
    }
}
