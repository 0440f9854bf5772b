//! The domain layer's one error type. The HTTP edge maps each variant to a
//! status and a stable problem code; the CLI prints it with its causes.
//!
//! Which variant to use: `Invalid` for input that can never be valid (the
//! caller's fault, 400); `Conflict` and `NotFound` for state; the three
//! `Invalid…` authentication failures, whose reasons are for logs only (every
//! one looks the same from outside); `Unavailable` when a dependency could
//! not be reached in time and a retry may succeed (503); `Internal` for a bug
//! or a broken invariant (500). The last two keep their cause as `source`,
//! for the log line written where the request ends; it is never sent.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::db::DbError;
use crate::domain::accounts::password::PasswordError;
use crate::domain::keys::secrets::SecretError;
use crate::types::ids::InvalidInput;
use crate::types::scopes::Scope;

/// A cause of any kind, kept for the logs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The caller sent a value that can never be valid.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("{0} already exists")]
    Conflict(Conflict),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A change asked for (`If-Match`) against a revision that is no longer
    /// current: nothing was changed.
    #[error("the resource changed since it was read")]
    Stale,
    /// A user was to hold a role the tenant does not define: nothing changed.
    #[error("no such role in the tenant")]
    UnknownRole,
    /// The caller is authenticated but lacks this scope (RFC 6750 §3.1).
    #[error("needs scope {0}")]
    InsufficientScope(Scope),
    /// The caller is authenticated but may not do this whatever its
    /// scopes (a member's token on an admin route, a tenant's credential
    /// acting at the root level). The reason is for logs only.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// A login that did not succeed. The reason is for logs only.
    #[error("login refused: {}", .0.as_str())]
    InvalidCredentials(LoginFailure),
    /// A refresh token that cannot be exchanged. The reason is for logs only.
    #[error("refresh refused: {}", .0.as_str())]
    InvalidGrant(RefreshFailure),
    /// A token that did not verify. The reason is for logs only.
    #[error("token rejected: {}", .0.as_str())]
    InvalidToken(Rejection),
    /// A dependency (Postgres, Redis, the hashing queue) could not be used in
    /// time; worth retrying.
    #[error("unavailable")]
    Unavailable(#[source] BoxError),
    /// A bug or a broken invariant.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

/// An error and its sources, `: `-separated, for log lines. A source whose
/// text its parent already ends with (`"redis: {0}"` over the Redis error)
/// is not repeated.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut said = self.0.to_string();
        f.write_str(&said)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = cause.to_string();
            if !said.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            said = text;
            next = cause.source();
        }
        Ok(())
    }
}

impl DomainError {
    pub fn unavailable(cause: impl Into<BoxError>) -> Self {
        DomainError::Unavailable(cause.into())
    }

    pub fn internal(cause: impl Into<BoxError>) -> Self {
        DomainError::Internal(cause.into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    TenantSlug,
    Username,
    /// The change would leave the tenant without an enabled admin.
    LastAdmin,
    RoleName,
    /// The tenant has as many roles as it may define.
    RoleLimit,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conflict::TenantSlug => "a tenant with this slug",
            Conflict::Username => "a user with this username",
            Conflict::LastAdmin => "the last admin of the tenant",
            Conflict::RoleName => "a role with this name",
            Conflict::RoleLimit => "the tenant's limit of 500 roles",
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
    /// A console sign-in by a user who is not an admin.
    NotAdmin,
}

impl LoginFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginFailure::MalformedInput => "malformed_input",
            LoginFailure::InputTooLong => "input_too_long",
            LoginFailure::UnknownUser => "unknown_user",
            LoginFailure::WrongPassword => "wrong_password",
            LoginFailure::Disabled => "disabled",
            LoginFailure::NotAdmin => "not_admin",
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
            DbError::Unavailable(_) | DbError::TimedOut(_) => DomainError::unavailable(e),
            DbError::Query(e) => e.into(),
        }
    }
}

impl From<DieselError> for DomainError {
    fn from(e: DieselError) -> Self {
        // The server is gone, going, or no longer the primary (a failover):
        // worth retrying, and the pool will not reuse the connection.
        if crate::db::connection::lost(&e) {
            return DomainError::unavailable(e);
        }
        DomainError::internal(e)
    }
}

impl From<SecretError> for DomainError {
    fn from(e: SecretError) -> Self {
        DomainError::internal(e)
    }
}

impl From<PasswordError> for DomainError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Busy => DomainError::unavailable(e),
            other => DomainError::internal(other),
        }
    }
}

/// Why a token was rejected. Logged (and later counted), never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Malformed,
    UnsupportedAlgorithm,
    UnknownUser,
    RetiredGeneration,
    BadSignature,
    Expired,
    NotYetValid,
    IssuedInFuture,
    /// `exp - iat` beyond the access-token lifetime the service issues.
    LifetimeTooLong,
    /// `iat` longer ago than the access-token lifetime.
    IssuedTooLongAgo,
    WrongIssuer,
    WrongAudience,
    ClaimsMismatch,
    Disabled,
    RevokedSession,
    UndecryptableSecret,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::UnsupportedAlgorithm => "unsupported_algorithm",
            Rejection::UnknownUser => "unknown_user",
            Rejection::RetiredGeneration => "retired_generation",
            Rejection::BadSignature => "bad_signature",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not_yet_valid",
            Rejection::IssuedInFuture => "issued_in_future",
            Rejection::LifetimeTooLong => "lifetime_too_long",
            Rejection::IssuedTooLongAgo => "issued_too_long_ago",
            Rejection::WrongIssuer => "wrong_issuer",
            Rejection::WrongAudience => "wrong_audience",
            Rejection::ClaimsMismatch => "claims_mismatch",
            Rejection::Disabled => "disabled",
            Rejection::RevokedSession => "revoked_session",
            Rejection::UndecryptableSecret => "undecryptable_secret",
        }
    }
}

impl From<Rejection> for DomainError {
    fn from(reason: Rejection) -> Self {
        DomainError::InvalidToken(reason)
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
    fn a_chain_names_every_cause_once() {
        let db = DbError::TimedOut(std::time::Duration::from_secs(5));
        let e = DomainError::from(db);
        assert_eq!(
            ErrorChain(&e).to_string(),
            "unavailable: database did not answer within 5s"
        );
        let io = std::io::Error::other("disk on fire");
        let file = SecretError::KeyFile {
            path: "k".into(),
            source: io,
        };
        let e = DomainError::from(file);
        assert_eq!(
            ErrorChain(&e).to_string(),
            "internal error: master key file k: disk on fire",
            "the io error, already in its parent's text, is not repeated"
        );
    }

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
        for restart in [
            "terminating connection due to administrator command",
            "the database system is shutting down",
            "the database system is starting up",
        ] {
            let broken = DieselError::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new(restart.to_owned()),
            );
            assert!(
                matches!(DomainError::from(broken), DomainError::Unavailable(_)),
                "{restart}: a Postgres restart answers 503, not 500"
            );
        }
        let failover = DieselError::DatabaseError(
            DatabaseErrorKind::ReadOnlyTransaction,
            Box::new(String::new()),
        );
        assert!(matches!(
            DomainError::from(failover),
            DomainError::Unavailable(_)
        ));
        let bug =
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new("syntax".to_owned()));
        assert!(matches!(DomainError::from(bug), DomainError::Internal(_)));
    }
}
