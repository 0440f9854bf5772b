//! `/v1/forward-auth`: what API gateways ask about each request (nginx
//! `auth_request`, Traefik `forwardAuth`, Envoy `ext_authz`, Caddy
//! `forward_auth`). The token is verified exactly as for `/v1/me`; the
//! identity goes back in response headers for the gateway to pass upstream,
//! and no body is built. Requirements come in the query string of the auth
//! URL the gateway is configured with.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use crate::domain::tokens::key_records::KeyRecord;
use crate::http::extract::ForwardedUser;
use crate::http::problem::{ApiError, CallerErrors, Problem};
use crate::types::ids::{Role, SessionId};

const USER_ID: HeaderName = HeaderName::from_static("x-auth-user-id");
const TENANT_ID: HeaderName = HeaderName::from_static("x-auth-tenant-id");
const TENANT: HeaderName = HeaderName::from_static("x-auth-tenant");
const USERNAME: HeaderName = HeaderName::from_static("x-auth-username");
const ROLE: HeaderName = HeaderName::from_static("x-auth-role");
const SESSION_ID: HeaderName = HeaderName::from_static("x-auth-session-id");

/// The answer that lets a request through, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 200,
    description = "Let the request through; no body",
    headers(
        ("X-Auth-User-Id" = uuid::Uuid, description = "The user's id"),
        ("X-Auth-Tenant-Id" = uuid::Uuid, description = "The tenant's id"),
        ("X-Auth-Tenant" = String, description = "The tenant's slug"),
        ("X-Auth-Username" = String, description = "The username"),
        ("X-Auth-Role" = Role, description = "`member` or `admin`"),
        ("X-Auth-Session-Id" = uuid::Uuid, description = "The session (`sid`)"),
    )
)]
pub struct Identity;

/// What the gateway's auth URL requires of the user, read from its query
/// string. Gateways may pass the client's own query on (Caddy's `uri` keeps
/// it), so parameters it does not know are ignored, and a requirement named
/// twice keeps its strictest reading: the client can add to what the
/// gateway asks, never take from it. A value that does not parse fails closed
/// (400).
#[derive(Debug, Default, PartialEq)]
pub struct Requirements {
    /// The least role: `admin` lets only admins through.
    role: Option<Role>,
    /// Tenant slugs: the user's must be each of them.
    tenants: Vec<String>,
}

impl Requirements {
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let mut requirements = Self::default();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*name {
                "role" => {
                    let role = Role::parse(&value)?;
                    if requirements.role != Some(Role::Admin) {
                        requirements.role = Some(role);
                    }
                }
                "tenant" => requirements.tenants.push(value.into_owned()),
                _ => {}
            }
        }
        Ok(requirements)
    }

    /// Whether the user described by `record` meets every requirement.
    pub fn allow(&self, record: &KeyRecord) -> bool {
        let role = self
            .role
            .is_none_or(|least| least == Role::Member || record.role == Role::Admin);
        let tenant = self
            .tenants
            .iter()
            .all(|slug| slug == record.tenant_slug.as_str());
        role && tenant
    }
}

/// Whether the bearer (or the configured cookie) may pass; the identity in
/// headers if so.
#[utoipa::path(
    method(get, head, post, put, patch, delete, options),
    path = "/v1/forward-auth", tag = "gateway",
    params(
        ("role" = Option<Role>, Query, nullable = false, description = "The least role: `admin` lets only admins through (403 for a member)"),
        ("tenant" = Option<String>, Query, nullable = false, description = "A tenant's slug: only its users pass (403 for another tenant's)"),
    ),
    responses(
        Identity,
        (status = 400, description = "A requirement whose value does not parse (other parameters are ignored)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A valid token whose user does not meet `role` or `tenant`", body = Problem, content_type = "application/problem+json"),
        CallerErrors,
    ),
    security(("access_token" = [])),
)]
pub async fn check(
    ForwardedUser(verified): ForwardedUser,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let record = &verified.record;
    let requirements = Requirements::parse(req.query_string())?;
    if !requirements.allow(record) {
        tracing::info!(user_id = %record.user_id, ?requirements, "forward-auth: requirements not met");
        return Err(ApiError::Forbidden);
    }
    identity(record, verified.claims.sid)
}

/// 200, no body, the identity in headers.
fn identity(record: &KeyRecord, sid: SessionId) -> Result<HttpResponse, ApiError> {
    let header = |value: String| HeaderValue::try_from(value).map_err(|_| ApiError::Internal(None));
    Ok(HttpResponse::Ok()
        .insert_header((USER_ID, header(record.user_id.to_string())?))
        .insert_header((TENANT_ID, header(record.tenant_id.to_string())?))
        .insert_header((TENANT, header(record.tenant_slug.to_string())?))
        .insert_header((USERNAME, header(record.username.to_string())?))
        .insert_header((ROLE, HeaderValue::from_static(record.role.as_str())))
        .insert_header((SESSION_ID, header(sid.to_string())?))
        .finish())
}

/// `check` for gateways that append the original path and query to the
/// auth URL (Envoy's `path_prefix`): the rest of the path and the query are
/// the original request's, so no requirement is read from them.
#[utoipa::path(
    method(get, head, post, put, patch, delete, options),
    path = "/v1/forward-auth/{path}", tag = "gateway",
    params(("path" = String, Path, description = "The original request's path; ignored")),
    responses(
        Identity,
        CallerErrors,
    ),
    security(("access_token" = [])),
)]
pub async fn check_any_path(
    ForwardedUser(verified): ForwardedUser,
) -> Result<HttpResponse, ApiError> {
    let (record, sid) = (&verified.record, verified.claims.sid);
    identity(record, sid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, tenant: &str) -> KeyRecord {
        let mut record = crate::domain::sample::signed().record;
        record.role = role;
        record.tenant_slug = crate::types::ids::TenantSlug::parse(tenant).unwrap();
        record
    }

    fn parsed(query: &str) -> Requirements {
        Requirements::parse(query).unwrap()
    }

    #[test]
    fn requirements_are_a_least_role_and_a_tenant() {
        let (none, admins, members, acme) = (
            parsed(""),
            parsed("role=admin"),
            parsed("role=member"),
            parsed("tenant=acme"),
        );
        let (member, admin) = (user(Role::Member, "acme"), user(Role::Admin, "acme"));
        let elsewhere = user(Role::Admin, "globex");
        assert!(none.allow(&member) && none.allow(&elsewhere));
        assert!(!admins.allow(&member) && admins.allow(&admin));
        assert!(
            members.allow(&member) && members.allow(&admin),
            "member is the least"
        );
        assert!(acme.allow(&member) && !acme.allow(&elsewhere));
    }

    #[test]
    fn unknown_parameters_are_ignored() {
        assert_eq!(parsed("page=2&sort=desc&role=admin"), parsed("role=admin"));
        assert_eq!(parsed("page=2"), Requirements::default());
    }

    #[test]
    fn a_client_adding_to_the_query_cannot_loosen_it() {
        let member = user(Role::Member, "acme");
        for query in [
            "role=admin&role=member",
            "role=member&role=admin",
            "role=admin&page=1&role=member",
        ] {
            assert!(
                !parsed(query).allow(&member),
                "{query} lets a member through"
            );
        }
        let acme_admin = user(Role::Admin, "acme");
        assert!(!parsed("tenant=globex&tenant=acme").allow(&acme_admin));
        assert!(!parsed("tenant=acme&tenant=globex").allow(&acme_admin));
        assert!(parsed("tenant=acme&tenant=acme").allow(&acme_admin));
    }

    #[test]
    fn a_requirement_that_does_not_parse_fails_closed() {
        for query in ["role=root", "role=", "role=Admin", "role=admin&role=x"] {
            assert!(Requirements::parse(query).is_err(), "{query} parsed");
        }
    }
}
