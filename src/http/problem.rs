//! The one error type at the HTTP edge. Every error response is RFC 9457
//! `application/problem+json` with a stable `code`. All authentication
//! failures of a kind render byte-identically; causes go to the log only.
//!
//! Use `ApiError::from(DomainError)` in handlers; the extractor error handlers
//! below cover bodies, paths and queries actix rejects before a handler runs.
//! The cause of a 503 or a 500 rides along as `source` and is logged once,
//! where the request ends (`observe`), never rendered.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::domain::DomainError;
use crate::domain::error::{BoxError, Conflict, ErrorChain};
use crate::types::scopes::Scope;

pub const PROBLEM_JSON: &str = "application/problem+json";
const REALM: &str = "tenant-jwt";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No bearer credentials at all (RFC 6750 §3.1: challenge without error code).
    #[error("authentication required")]
    MissingToken,
    /// Bearer credentials were presented and are not good: a bad access token
    /// or a wrong service key. One response for every reason.
    #[error("invalid token")]
    InvalidToken,
    /// A login that failed, for whatever reason. One response for every reason.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A refresh token that cannot be exchanged, for whatever reason.
    #[error("invalid grant")]
    InvalidGrant,
    #[error("{detail}")]
    Validation { field: &'static str, detail: String },
    #[error("{0}")]
    BadRequest(String),
    /// Authenticated, but the role does not allow this.
    #[error("forbidden")]
    Forbidden,
    /// Authenticated, but the credential lacks this scope.
    #[error("insufficient scope: needs {0}")]
    InsufficientScope(Scope),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("method not allowed")]
    /// With the methods the resource serves, for `Allow`.
    MethodNotAllowed(String),
    #[error("{0} already exists")]
    Conflict(Conflict),
    /// `If-Match` named a revision that is no longer current.
    #[error("precondition failed")]
    PreconditionFailed,
    /// A role name the tenant does not define.
    #[error("no such role in the tenant")]
    UnknownRole,
    #[error("request body too large")]
    PayloadTooLarge,
    /// The request body did not arrive in time.
    #[error("request timeout")]
    RequestTimeout,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// Over a rate limit; retry after this many seconds.
    #[error("too many requests")]
    TooManyRequests(u64),
    /// A dependency could not be used in time; worth retrying.
    #[error("service unavailable")]
    Unavailable(#[source] Option<BoxError>),
    #[error("internal error")]
    Internal(#[source] Option<BoxError>),
}

/// An RFC 9457 problem.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem<'a> {
    /// `urn:tenant-jwt:problem:<code>`.
    #[serde(rename = "type")]
    #[schema(example = "urn:tenant-jwt:problem:invalid_token")]
    kind: String,
    #[schema(example = "Invalid token")]
    title: &'a str,
    #[schema(example = 401)]
    status: u16,
    /// Stable, machine-readable.
    #[schema(example = "invalid_token")]
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    /// The offending input field, for `validation_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl<'a> Problem<'a> {
    /// A problem with no detail.
    pub fn new(status: StatusCode, code: &'a str, title: &'a str) -> Self {
        Self {
            kind: format!("urn:tenant-jwt:problem:{code}"),
            title,
            status: status.as_u16(),
            code,
            detail: None,
            field: None,
        }
    }
}

impl ApiError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingToken => "unauthenticated",
            ApiError::InvalidToken => "invalid_token",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::InvalidGrant => "invalid_grant",
            ApiError::Validation { .. } => "validation_failed",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Forbidden => "forbidden",
            ApiError::InsufficientScope(_) => "insufficient_scope",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(Conflict::TenantSlug) => "tenant_exists",
            ApiError::Conflict(Conflict::Username) => "user_exists",
            ApiError::Conflict(Conflict::LastAdmin) => "last_admin",
            ApiError::Conflict(Conflict::RoleName) => "role_exists",
            ApiError::Conflict(Conflict::RoleLimit) => "role_limit",
            ApiError::PreconditionFailed => "precondition_failed",
            ApiError::UnknownRole => "unknown_role",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::TooManyRequests(_) => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub(crate) fn title(&self) -> &'static str {
        match self {
            ApiError::MissingToken => "Authentication required",
            ApiError::InvalidToken => "Invalid token",
            ApiError::InvalidCredentials => "Invalid credentials",
            ApiError::InvalidGrant => "Invalid refresh token",
            ApiError::Validation { .. } => "Invalid input",
            ApiError::BadRequest(_) => "Bad request",
            ApiError::Forbidden => "Forbidden",
            ApiError::InsufficientScope(_) => "Insufficient scope",
            ApiError::NotFound(_) => "Not found",
            ApiError::MethodNotAllowed(_) => "Method not allowed",
            ApiError::Conflict(_) => "Conflict",
            ApiError::PreconditionFailed => "Precondition failed",
            ApiError::UnknownRole => "Unknown role",
            ApiError::PayloadTooLarge => "Payload too large",
            ApiError::RequestTimeout => "Request timeout",
            ApiError::UnsupportedMediaType => "Unsupported media type",
            ApiError::TooManyRequests(_) => "Too many requests",
            ApiError::Unavailable(_) => "Service unavailable",
            ApiError::Internal(_) => "Internal server error",
        }
    }

    /// Detail for the client; none where it could help an attacker or leak a cause.
    pub(crate) fn detail(&self) -> Option<String> {
        match self {
            ApiError::Validation { detail, .. } | ApiError::BadRequest(detail) => {
                Some(detail.clone())
            }
            ApiError::NotFound(_) => Some(self.to_string()),
            ApiError::InsufficientScope(scope) => Some(format!(
                "scope {scope} is needed, or (creating a credential) cannot be granted here"
            )),
            ApiError::Conflict(Conflict::LastAdmin) => {
                Some("the tenant must keep at least one enabled admin".to_owned())
            }
            ApiError::Conflict(Conflict::RoleLimit) => {
                Some("a tenant defines at most 500 roles".to_owned())
            }
            ApiError::PreconditionFailed => Some(
                "the role changed since it was read (If-Match); nothing was changed".to_owned(),
            ),
            ApiError::UnknownRole => Some(self.to_string()),
            ApiError::Conflict(_) => Some(self.to_string()),
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MissingToken
            | ApiError::InvalidToken
            | ApiError::InvalidCredentials
            | ApiError::InvalidGrant => StatusCode::UNAUTHORIZED,
            ApiError::Validation { .. } | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden | ApiError::InsufficientScope(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::UnknownRole => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        response.content_type(PROBLEM_JSON);
        match self {
            ApiError::MissingToken | ApiError::InvalidCredentials | ApiError::InvalidGrant => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!("Bearer realm=\"{REALM}\""),
                ));
            }
            ApiError::InvalidToken => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""),
                ));
            }
            ApiError::InsufficientScope(scope) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!(
                        "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{scope}\""
                    ),
                ));
            }
            ApiError::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            ApiError::MethodNotAllowed(allow) => {
                if let Ok(allow) = HeaderValue::from_str(allow) {
                    response.insert_header((header::ALLOW, allow));
                }
            }
            ApiError::TooManyRequests(seconds) => {
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            }
            _ => {}
        }
        response.json(Problem {
            detail: self.detail(),
            field: match self {
                ApiError::Validation { field, .. } => Some(field),
                _ => None,
            },
            ..Problem::new(status, self.code(), self.title())
        })
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(invalid) => ApiError::Validation {
                field: invalid.field,
                detail: invalid.to_string(),
            },
            DomainError::Conflict(what) => ApiError::Conflict(what),
            DomainError::NotFound(what) => ApiError::NotFound(what),
            DomainError::Stale => ApiError::PreconditionFailed,
            DomainError::UnknownRole => ApiError::UnknownRole,
            DomainError::InsufficientScope(scope) => ApiError::InsufficientScope(scope),
            DomainError::Forbidden(_) => ApiError::Forbidden,
            DomainError::InvalidCredentials(_) => ApiError::InvalidCredentials,
            DomainError::InvalidToken(_) => ApiError::InvalidToken,
            DomainError::InvalidGrant(_) => ApiError::InvalidGrant,
            DomainError::Unavailable(cause) => ApiError::Unavailable(Some(cause)),
            DomainError::Internal(cause) => ApiError::Internal(Some(cause)),
        }
    }
}

impl From<crate::types::ids::InvalidInput> for ApiError {
    fn from(e: crate::types::ids::InvalidInput) -> Self {
        DomainError::from(e).into()
    }
}

impl ApiError {
    /// Logs the cause of a 503 or a 500 with its whole chain; other answers
    /// are the caller's doing and were logged (with their reason) where
    /// they were decided.
    pub fn log_cause(&self) {
        match self {
            ApiError::Unavailable(cause) => {
                tracing::warn!(cause = %Cause(cause), "dependency unavailable")
            }
            ApiError::Internal(cause) => tracing::error!(cause = %Cause(cause), "internal error"),
            _ => {}
        }
    }
}

/// A cause for the log, with its chain.
struct Cause<'a>(&'a Option<BoxError>);

impl std::fmt::Display for Cause<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(cause) => ErrorChain(cause.as_ref()).fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

impl From<super::limits::LoginRefused> for ApiError {
    fn from(refused: super::limits::LoginRefused) -> Self {
        refused.retry.into()
    }
}

impl From<super::limits::RetryAfter> for ApiError {
    fn from(super::limits::RetryAfter(seconds): super::limits::RetryAfter) -> Self {
        ApiError::TooManyRequests(seconds)
    }
}

/// What tenant administration answers besides `CallerErrors`, for the
/// OpenAPI document (`responses(…, CallerErrors, AdminErrors)`).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its derived description is used.
pub enum AdminErrors {
    /// A member's token (only services and tenant admins administer), or a
    /// credential without the scope the operation needs
    /// (`insufficient_scope`, with `WWW-Authenticate` naming the scope).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem<'static>),
    /// No such tenant or user, or one of another tenant: the same answer.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem<'static>),
}

/// A service route's answer to a credential without its scope.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its derived description is used.
pub enum ScopeErrors {
    /// A credential without the scope the operation needs
    /// (`insufficient_scope`, with `WWW-Authenticate` naming the scope).
    #[response(status = 403, content_type = "application/problem+json")]
    InsufficientScope(Problem<'static>),
}

/// The failures of a route that needs a service key or an access token.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its derived description is used.
pub enum CallerErrors {
    /// No credentials, or an invalid one.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem<'static>),
    /// Too many invalid credentials from this address, or over this service
    /// key's limit (`Retry-After`).
    #[response(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Problem<'static>),
    /// Postgres or Redis could not be used in time, or a change is saved but
    /// not yet in the cache: retry (`Retry-After`).
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem<'static>),
}

/// The failures of reading a request body (`body::read`, the parsers).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its derived description is used.
pub enum BodyErrors {
    /// A body that does not parse, or a value the rules refuse (`field` names it).
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem<'static>),
    /// The body did not arrive within the body timeout; the connection closes.
    #[response(status = 408, content_type = "application/problem+json")]
    RequestTimeout(Problem<'static>),
    /// Over 16 KiB.
    #[response(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Problem<'static>),
    /// A content type the operation does not read.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem<'static>),
}

/// Postgres could not be used in time: retry (`Retry-After`).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its derived description is used.
pub enum UnavailableError {
    /// Postgres or Redis could not be used in time: retry (`Retry-After`).
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem<'static>),
}
