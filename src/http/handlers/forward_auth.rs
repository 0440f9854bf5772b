//! `/v1/forward-auth`: what API gateways ask about each request (nginx
//! `auth_request`, Traefik `forwardAuth`, Envoy `ext_authz`, Caddy
//! `forward_auth`). The token is verified exactly as for `/v1/me`; the
//! identity goes back in response headers for the gateway to pass upstream,
//! and no body is built. Requirements come in the query string of the auth
//! URL the gateway is configured with.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::domain::authz::grammar::Permission;
use crate::domain::authz::view::Holder;
use crate::domain::tokens::key_records::KeyRecord;
use crate::domain::tokens::verify::Verified;
use crate::http::extract::ForwardedUser;
use crate::http::handlers::grammar_schemas::PermissionItem;
use crate::http::problem::{ApiError, CallerErrors, Problem};
use crate::http::state::AppState;
use crate::types::ids::{InvalidInput, Role, SessionId};

const USER_ID: HeaderName = HeaderName::from_static("x-auth-user-id");
const TENANT_ID: HeaderName = HeaderName::from_static("x-auth-tenant-id");
const TENANT: HeaderName = HeaderName::from_static("x-auth-tenant");
const USERNAME: HeaderName = HeaderName::from_static("x-auth-username");
const ROLE: HeaderName = HeaderName::from_static("x-auth-role");
const SESSION_ID: HeaderName = HeaderName::from_static("x-auth-session-id");
const ROLES: HeaderName = HeaderName::from_static("x-auth-roles");
/// Requirements a gateway that cannot set a query string sends as headers.
const REQUIRE: HeaderName = HeaderName::from_static("x-auth-require");
const REQUIRE_ANY: HeaderName = HeaderName::from_static("x-auth-require-any");
const MIN_VERSION: HeaderName = HeaderName::from_static("x-auth-min-version");
/// Permissions in one `require` or `require_any` at most.
const MAX_LISTED: usize = 50;

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
        ("X-Auth-Roles" = String, description = "The user's roles now, comma-separated and sorted; empty for none, and while the tenant's roles cannot be read (Postgres unreachable)"),
    )
)]
pub struct Identity;

/// What the gateway requires of the user, read from the auth URL's query
/// string and from the `X-Auth-Require*` headers. Gateways may pass the
/// client's own query and headers on (Caddy's `uri` keeps the query, nginx
/// passes headers), so parameters it does not know are ignored, and every
/// requirement named counts: the client can add to what the gateway asks,
/// never take from it. A value that does not parse fails closed (400).
#[derive(Debug, Default, PartialEq)]
pub struct Requirements {
    /// The least role: `admin` lets only admins through.
    role: Option<Role>,
    /// Tenant slugs: the user's must be each of them.
    tenants: Vec<String>,
    /// Permissions the user must hold, every one (`require`).
    all: Vec<Permission>,
    /// Lists of permissions, of each of which the user must hold one
    /// (`require_any`).
    any: Vec<Vec<Permission>>,
    /// Decide from roles at least this recent: the newest asked.
    min_version: Option<i64>,
}

impl Requirements {
    pub fn parse(query: &str) -> Result<Self, InvalidInput> {
        let mut requirements = Self::default();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            requirements.add(&name, &value)?;
        }
        Ok(requirements)
    }

    /// These and the requirements in headers.
    pub fn with_headers(mut self, headers: &HeaderMap) -> Result<Self, InvalidInput> {
        for (header, name) in [
            (REQUIRE, "require"),
            (REQUIRE_ANY, "require_any"),
            (MIN_VERSION, "min_version"),
        ] {
            for value in headers.get_all(header) {
                let value = value
                    .to_str()
                    .map_err(|_| InvalidInput::new(name, "must be text"))?;
                self.add(name, value)?;
            }
        }
        Ok(self)
    }

    fn add(&mut self, name: &str, value: &str) -> Result<(), InvalidInput> {
        match name {
            "role" => {
                let role = Role::parse(value)?;
                if self.role != Some(Role::Admin) {
                    self.role = Some(role);
                }
            }
            "tenant" => self.tenants.push(value.to_owned()),
            "require" => self.all.extend(listed("require", value)?),
            "require_any" => self.any.push(listed("require_any", value)?),
            "min_version" => {
                let version = value
                    .parse::<i64>()
                    .ok()
                    .filter(|v| *v >= 0 && value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or(InvalidInput::new("min_version", "a non-negative integer"))?;
                self.min_version = self.min_version.max(Some(version));
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether deciding needs the tenant's roles as they are now.
    fn need_roles(&self) -> bool {
        !self.all.is_empty() || !self.any.is_empty() || self.min_version.is_some()
    }

    /// Whether the user described by `record`, holding what `held` says,
    /// meets every requirement.
    pub fn allow(&self, record: &KeyRecord, held: Option<&Holder>) -> bool {
        let role = self
            .role
            .is_none_or(|least| least == Role::Member || record.role == Role::Admin);
        let tenant = self
            .tenants
            .iter()
            .all(|slug| slug == record.tenant_slug.as_str());
        let permissions = (self.all.is_empty() && self.any.is_empty())
            || held.is_some_and(|held| {
                self.all.iter().all(|p| held.allows(p))
                    && self
                        .any
                        .iter()
                        .all(|one_of| one_of.iter().any(|p| held.allows(p)))
            });
        role && tenant && permissions
    }
}

/// `a,b,c`: 1 to 50 permissions, never patterns.
fn listed(field: &'static str, value: &str) -> Result<Vec<Permission>, InvalidInput> {
    let refused = || InvalidInput::new(field, "1 to 50 permissions, comma-separated");
    let listed = value
        .split(',')
        .map(|p| Permission::parse(p.trim()).map_err(|_| refused()))
        .collect::<Result<Vec<_>, _>>()?;
    if listed.len() > MAX_LISTED {
        return Err(refused());
    }
    Ok(listed)
}

/// Whether the bearer (or the configured cookie) may pass; the identity in
/// headers if so.
#[utoipa::path(
    method(get, head, post, put, patch, delete, options),
    path = "/v1/forward-auth", tag = "gateway",
    params(
        ("role" = Option<Role>, Query, nullable = false, description = "The least role: `admin` lets only admins through (403 for a member)"),
        ("tenant" = Option<String>, Query, nullable = false, description = "A tenant's slug: only its users pass (403 for another tenant's)"),
        ("require" = Option<Vec<PermissionItem>>, Query, style = Form, explode = false, nullable = false, min_items = 1, max_items = 50, description = "Comma-separated permissions the user must hold, every one (403 otherwise); also as the header `X-Auth-Require`"),
        ("require_any" = Option<Vec<PermissionItem>>, Query, style = Form, explode = false, nullable = false, min_items = 1, max_items = 50, description = "Comma-separated permissions of which the user must hold one; also as the header `X-Auth-Require-Any`"),
        ("min_version" = Option<i64>, Query, nullable = false, minimum = 0, description = "Decide from the tenant's roles at least this recent (an `authz_version` a write returned); also as the header `X-Auth-Min-Version`"),
        ("X-Auth-Require" = Option<Vec<PermissionItem>>, Header, style = Simple, nullable = false, min_items = 1, max_items = 50, description = "As `require`"),
        ("X-Auth-Require-Any" = Option<Vec<PermissionItem>>, Header, style = Simple, nullable = false, min_items = 1, max_items = 50, description = "As `require_any`"),
        ("X-Auth-Min-Version" = Option<i64>, Header, nullable = false, minimum = 0, description = "As `min_version`"),
    ),
    responses(
        Identity,
        (status = 400, description = "A requirement whose value does not parse (other parameters are ignored)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A valid token whose user does not meet a requirement", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Permissions are required and the tenant's roles cannot be read now", body = Problem, content_type = "application/problem+json"),
        CallerErrors,
    ),
    security(("access_token" = [])),
)]
pub async fn check(
    ForwardedUser(verified): ForwardedUser,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let requirements = Requirements::parse(req.query_string())?.with_headers(req.headers())?;
    decide(&state, &verified, &requirements).await
}

/// 200 with the identity if the user meets `requirements`, else 403.
async fn decide(
    state: &AppState,
    verified: &Verified,
    requirements: &Requirements,
) -> Result<HttpResponse, ApiError> {
    let record = &verified.record;
    let view = if requirements.need_roles() {
        let least = requirements.min_version;
        Some(state.authz.view(record.tenant_id, least).await?)
    } else {
        state.authz.current(record.tenant_id).await
    };
    let held = view.as_deref().map(|view| view.holder(record.user_id));
    if !requirements.allow(record, held.as_ref()) {
        tracing::info!(user_id = %record.user_id, ?requirements, "forward-auth: requirements not met");
        return Err(ApiError::Forbidden);
    }
    identity(record, verified.claims.sid, held.as_ref())
}

/// 200, no body, the identity in headers.
fn identity(
    record: &KeyRecord,
    sid: SessionId,
    held: Option<&Holder>,
) -> Result<HttpResponse, ApiError> {
    let header = |value: String| HeaderValue::try_from(value).map_err(|_| ApiError::Internal(None));
    let roles = held.map(|held| held.role_names()).unwrap_or_default();
    let roles = roles.iter().map(|name| name.as_str()).collect::<Vec<_>>();
    Ok(HttpResponse::Ok()
        .insert_header((USER_ID, header(record.user_id.to_string())?))
        .insert_header((TENANT_ID, header(record.tenant_id.to_string())?))
        .insert_header((TENANT, header(record.tenant_slug.to_string())?))
        .insert_header((USERNAME, header(record.username.to_string())?))
        .insert_header((ROLE, HeaderValue::from_static(record.role.as_str())))
        .insert_header((SESSION_ID, header(sid.to_string())?))
        .insert_header((ROLES, header(roles.join(","))?))
        .finish())
}

/// `check` for gateways that append the original path and query to the
/// auth URL (Envoy's `path_prefix`): the rest of the path and the query are
/// the original request's, so requirements are read from headers only.
#[utoipa::path(
    method(get, head, post, put, patch, delete, options),
    path = "/v1/forward-auth/{path}", tag = "gateway",
    params(
        ("path" = String, Path, description = "The original request's path; ignored"),
        ("X-Auth-Require" = Option<Vec<PermissionItem>>, Header, style = Simple, nullable = false, min_items = 1, max_items = 50, description = "Comma-separated permissions the user must hold, every one"),
        ("X-Auth-Require-Any" = Option<Vec<PermissionItem>>, Header, style = Simple, nullable = false, min_items = 1, max_items = 50, description = "Comma-separated permissions of which the user must hold one"),
        ("X-Auth-Min-Version" = Option<i64>, Header, nullable = false, minimum = 0, description = "Decide from the tenant's roles at least this recent"),
    ),
    responses(
        Identity,
        (status = 400, description = "A requirement header whose value does not parse", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A valid token whose user does not meet a requirement", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Permissions are required and the tenant's roles cannot be read now", body = Problem, content_type = "application/problem+json"),
        CallerErrors,
    ),
    security(("access_token" = [])),
)]
pub async fn check_any_path(
    ForwardedUser(verified): ForwardedUser,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let requirements = Requirements::default().with_headers(req.headers())?;
    decide(&state, &verified, &requirements).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::authz::view::TenantView;

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
        assert!(none.allow(&member, None) && none.allow(&elsewhere, None));
        assert!(!admins.allow(&member, None) && admins.allow(&admin, None));
        assert!(
            members.allow(&member, None) && members.allow(&admin, None),
            "member is the least"
        );
        assert!(acme.allow(&member, None) && !acme.allow(&elsewhere, None));
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
                !parsed(query).allow(&member, None),
                "{query} lets a member through"
            );
        }
        let acme_admin = user(Role::Admin, "acme");
        assert!(!parsed("tenant=globex&tenant=acme").allow(&acme_admin, None));
        assert!(!parsed("tenant=acme&tenant=globex").allow(&acme_admin, None));
        assert!(parsed("tenant=acme&tenant=acme").allow(&acme_admin, None));
    }

    fn holding(user: crate::types::ids::UserId, patterns: &[&str]) -> TenantView {
        use crate::domain::authz::grammar::{Pattern, RoleName};
        let role = crate::types::ids::RoleId::generate();
        let patterns = patterns
            .iter()
            .map(|p| Pattern::parse(p).unwrap())
            .collect();
        let name = RoleName::parse("clerk").unwrap();
        TenantView::new(1, vec![(role, name, patterns)], [(user, role)])
    }

    #[test]
    fn permissions_required_are_all_of_require_and_one_of_each_require_any() {
        let member = user(Role::Member, "acme");
        let view = holding(member.user_id, &["invoices:*", "reports:read"]);
        let held = view.holder(member.user_id);
        let allow = |query: &str| parsed(query).allow(&member, Some(&held));
        assert!(allow("require=invoices:approve,reports:read"));
        assert!(!allow("require=invoices:approve,reports:write"));
        assert!(allow("require_any=reports:write,invoices:void"));
        assert!(!allow("require_any=reports:write,orders:read"));
        assert!(
            !allow("require=invoices:void&require=orders:read"),
            "each require adds"
        );
        assert!(
            !allow("require_any=invoices:void&require_any=orders:read"),
            "each require_any must be met"
        );
        assert!(allow("page=1"), "nothing required");
        assert!(
            !parsed("require=invoices:void").allow(&member, None),
            "roles unknown: nothing granted"
        );
        let mut headers = HeaderMap::new();
        headers.append(REQUIRE, HeaderValue::from_static("orders:read"));
        headers.append(MIN_VERSION, HeaderValue::from_static("7"));
        let read = parsed("min_version=9").with_headers(&headers).unwrap();
        assert!(!read.allow(&member, Some(&held)), "the header's adds too");
        assert_eq!(read.min_version, Some(9), "the newest asked");
    }

    #[test]
    fn a_requirement_that_does_not_parse_fails_closed() {
        let many = format!("require={}", vec!["a:b"; 51].join(","));
        for query in [
            "role=root",
            "role=",
            "role=Admin",
            "role=admin&role=x",
            "require=",
            "require=invoices:*",
            "require_any=a,,b",
            "require=Invoices",
            "min_version=-1",
            "min_version=x",
            "min_version=+3",
            &many,
        ] {
            assert!(Requirements::parse(query).is_err(), "{query} parsed");
        }
    }
}
