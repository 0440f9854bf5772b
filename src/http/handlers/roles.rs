//! `/v1/tenants/{tenant}/roles…` and `/v1/tenants/{tenant}/users/{user_id}/roles`:
//! a tenant's roles and who holds them. Every write answers with the
//! tenant's new `authz_version`, in the body and in `Authz-Version`; a role
//! carries its revision as an `ETag`, which `If-Match` checks on a change.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::grammar_schemas::{PatternItem, RoleNameItem};
use super::users::user_id;
use crate::domain::authz::grammar::RoleName;
use crate::domain::authz::roles::{self, NewRole, Role, RolePatch, UserRoles, Versioned};
use crate::http::body::{Json, Query, non_null};
use crate::http::extract::{AdminCaller, scope};
use crate::http::problem::{AdminErrors, ApiError, BodyErrors, CallerErrors, Problem};
use crate::http::state::AppState;

const AUTHZ_VERSION: HeaderName = HeaderName::from_static("authz-version");

#[derive(Serialize, ToSchema)]
pub struct RoleResponse {
    #[schema(value_type = String, example = "invoice-approver")]
    name: RoleName,
    description: String,
    /// The patterns the role grants, sorted.
    #[schema(value_type = Vec<String>, example = json!(["invoices:approve", "invoices:read"]))]
    permissions: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Role> for RoleResponse {
    fn from(role: Role) -> Self {
        Self {
            name: role.name,
            description: role.description,
            permissions: role.permissions.iter().map(ToString::to_string).collect(),
            created_at: role.created_at,
            updated_at: role.updated_at,
        }
    }
}

/// A role as a write answers it: with the tenant's new version.
#[derive(Serialize, ToSchema)]
pub struct RoleWritten {
    #[serde(flatten)]
    role: RoleResponse,
    /// The tenant's authorization version after this change.
    authz_version: i64,
}

#[derive(Serialize, ToSchema)]
pub struct RolePage {
    roles: Vec<RoleResponse>,
    /// Pass as `after` for the next page; null on the last one.
    #[schema(value_type = Option<String>)]
    next_after: Option<RoleName>,
}

#[derive(Serialize, ToSchema)]
pub struct UserRolesResponse {
    /// The role names the user holds, sorted.
    #[schema(value_type = Vec<String>)]
    roles: Vec<RoleName>,
    /// Their effective permission patterns (the union of the roles'), sorted.
    #[schema(value_type = Vec<String>)]
    permissions: Vec<String>,
    /// The tenant's authorization version this was read or written at.
    authz_version: i64,
}

impl From<UserRoles> for UserRolesResponse {
    fn from(held: UserRoles) -> Self {
        Self {
            roles: held.roles,
            permissions: held.permissions.iter().map(ToString::to_string).collect(),
            authz_version: held.authz_version,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRole {
    /// Unique in the tenant: a-z, 0-9, `_`, `.`, `-`, 1 to 64, starting with a letter or digit.
    #[schema(example = "invoice-approver", pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    name: String,
    /// 0 to 500 characters.
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false, max_length = 500)]
    description: Option<String>,
    /// Permission patterns: `invoices:approve`, `invoices:*` or `*`; at most 200.
    #[schema(value_type = Vec<PatternItem>, max_items = 200, example = json!(["invoices:approve"]))]
    permissions: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchRole {
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false, max_length = 500)]
    description: Option<String>,
    /// Replaces the set.
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = Vec<PatternItem>, nullable = false, max_items = 200)]
    permissions: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetUserRoles {
    /// Role names; replaces the set; at most 50.
    #[schema(value_type = Vec<RoleNameItem>, max_items = 50, example = json!(["invoice-approver"]))]
    roles: Vec<String>,
}

/// `?limit=&after=` of the roles listing (by name).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RolePageQuery {
    /// 1 to 200 (larger is capped); default 50.
    #[param(value_type = Option<i64>, minimum = 1.0, maximum = 4294967295.0)]
    limit: Option<u32>,
    /// The `next_after` of the previous page.
    after: Option<String>,
}

/// The revisions an `If-Match` names (`"3"`, `W/"3"`, a list); `None` for
/// none or `*`. A value that is no revision of ours matches nothing.
fn if_match(req: &HttpRequest) -> Option<Vec<i64>> {
    let values: Vec<&str> = req
        .headers()
        .get_all(header::IF_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() || values.contains(&"*") {
        return None;
    }
    Some(
        values
            .iter()
            .filter_map(|tag| {
                let tag = tag.strip_prefix("W/").unwrap_or(tag);
                tag.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
            })
            .collect(),
    )
}

fn etag(builder: &mut HttpResponseBuilder, revision: i64) -> &mut HttpResponseBuilder {
    builder.insert_header((header::ETAG, format!("\"{revision}\"")))
}

fn versioned(builder: &mut HttpResponseBuilder, version: i64) -> &mut HttpResponseBuilder {
    builder.insert_header((AUTHZ_VERSION, HeaderValue::from(version)))
}

fn written(mut builder: HttpResponseBuilder, written: Versioned<Role>) -> HttpResponse {
    etag(&mut builder, written.value.revision);
    versioned(&mut builder, written.authz_version).json(RoleWritten {
        role: written.value.into(),
        authz_version: written.authz_version,
    })
}

fn patterns(raw: &[String]) -> Result<Vec<crate::domain::authz::grammar::Pattern>, ApiError> {
    Ok(roles::patterns(raw)?)
}

/// A role name from the path; one that breaks the grammar is simply not found.
fn role_name(raw: &str) -> Result<RoleName, ApiError> {
    RoleName::parse(raw).map_err(|_| ApiError::NotFound("role"))
}

/// Define a role.
#[utoipa::path(
    post, path = "/v1/tenants/{tenant}/roles", tag = "roles",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    request_body = CreateRole,
    responses(
        (status = 201, description = "Created; `ETag` its revision, `Authz-Version` the tenant's new version", body = RoleWritten),
        BodyErrors,
        CallerErrors,
        AdminErrors,
        (status = 409, description = "Name taken (`role_exists`), or the tenant's 500 roles reached (`role_limit`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("service_key" = ["roles:write"]), ("access_token" = [])),
)]
pub async fn create(
    AdminCaller(ctx, _): AdminCaller<scope::RolesWrite>,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    body: Json<CreateRole>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let new = NewRole {
        name: RoleName::parse(&body.name)?,
        description: roles::description(body.description)?,
        permissions: patterns(&body.permissions)?,
    };
    let role = state.roles.create(&ctx, &tenant, new).await?;
    Ok(written(HttpResponse::Created(), role))
}

/// List a tenant's roles by name.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/roles", tag = "roles",
    params(("tenant" = String, Path, description = "The tenant's slug"), RolePageQuery),
    responses(
        (status = 200, description = "A page of roles", body = RolePage),
        (status = 400, description = "Invalid query", body = Problem, content_type = "application/problem+json"),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["roles:read"]), ("access_token" = [])),
)]
pub async fn list(
    AdminCaller(ctx, _): AdminCaller<scope::RolesRead>,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    query: Query<RolePageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .roles
        .list(&ctx, &tenant, query.after.as_deref(), query.limit)
        .await?;
    Ok(HttpResponse::Ok().json(RolePage {
        roles: page.roles.into_iter().map(RoleResponse::from).collect(),
        next_after: page.next_after,
    }))
}

/// Read a role.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/roles/{name}", tag = "roles",
    params(("tenant" = String, Path, description = "The tenant's slug"), ("name" = String, Path)),
    responses(
        (status = 200, description = "The role; `ETag` its revision", body = RoleResponse),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["roles:read"]), ("access_token" = [])),
)]
pub async fn get(
    AdminCaller(ctx, _): AdminCaller<scope::RolesRead>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, name) = path.into_inner();
    let role = state
        .roles
        .get(&ctx, &tenant, role_name(&name)?.as_str())
        .await?;
    let mut ok = HttpResponse::Ok();
    etag(&mut ok, role.revision);
    Ok(ok.json(RoleResponse::from(role)))
}

/// Change a role's description or permissions (the set is replaced).
#[utoipa::path(
    patch, path = "/v1/tenants/{tenant}/roles/{name}", tag = "roles",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("name" = String, Path),
        ("If-Match" = Option<String>, Header, description = "The `ETag` the change was made against"),
    ),
    request_body = PatchRole,
    responses(
        (status = 200, description = "Changed; `ETag` its new revision, `Authz-Version` the tenant's new version", body = RoleWritten),
        BodyErrors,
        CallerErrors,
        AdminErrors,
        (status = 412, description = "`If-Match` names an older revision (`precondition_failed`); nothing changed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("service_key" = ["roles:write"]), ("access_token" = [])),
)]
pub async fn update(
    AdminCaller(ctx, _): AdminCaller<scope::RolesWrite>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    body: Json<PatchRole>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, name) = path.into_inner();
    let body = body.into_inner();
    let patch = RolePatch {
        description: body
            .description
            .map(|d| roles::description(Some(d)))
            .transpose()?,
        permissions: body.permissions.as_deref().map(patterns).transpose()?,
    };
    let name = role_name(&name)?;
    let role = state
        .roles
        .update(
            &ctx,
            &tenant,
            name.as_str(),
            patch,
            if_match(&req).as_deref(),
        )
        .await?;
    Ok(written(HttpResponse::Ok(), role))
}

/// Delete a role; it leaves every user that held it.
#[utoipa::path(
    delete, path = "/v1/tenants/{tenant}/roles/{name}", tag = "roles",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("name" = String, Path),
        ("If-Match" = Option<String>, Header, description = "The `ETag` the deletion was decided on"),
    ),
    responses(
        (status = 204, description = "Deleted; `Authz-Version` the tenant's new version"),
        CallerErrors,
        AdminErrors,
        (status = 412, description = "`If-Match` names an older revision (`precondition_failed`); nothing changed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("service_key" = ["roles:write"]), ("access_token" = [])),
)]
pub async fn delete(
    AdminCaller(ctx, _): AdminCaller<scope::RolesWrite>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (tenant, name) = path.into_inner();
    let name = role_name(&name)?;
    let version = state
        .roles
        .delete(&ctx, &tenant, name.as_str(), if_match(&req).as_deref())
        .await?;
    Ok(versioned(&mut HttpResponse::NoContent(), version).finish())
}

/// The roles a user holds and their effective permissions.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/users/{user_id}/roles", tag = "roles",
    params(("tenant" = String, Path, description = "The tenant's slug"), ("user_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The user's roles", body = UserRolesResponse),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["roles:read"]), ("access_token" = [])),
)]
pub async fn user_roles(
    AdminCaller(ctx, _): AdminCaller<scope::RolesRead>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, user) = path.into_inner();
    let held = state
        .roles
        .user_roles(&ctx, &tenant, user_id(&user)?)
        .await?;
    Ok(HttpResponse::Ok().json(UserRolesResponse::from(held)))
}

/// Replace the roles a user holds. Their tokens stay valid: the next check
/// sees the new roles.
#[utoipa::path(
    put, path = "/v1/tenants/{tenant}/users/{user_id}/roles", tag = "roles",
    params(("tenant" = String, Path, description = "The tenant's slug"), ("user_id" = uuid::Uuid, Path)),
    request_body = SetUserRoles,
    responses(
        (status = 200, description = "The user's roles now; `Authz-Version` the tenant's new version", body = UserRolesResponse),
        BodyErrors,
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["roles:write"]), ("access_token" = [])),
)]
pub async fn set_user_roles(
    AdminCaller(ctx, _): AdminCaller<scope::RolesWrite>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Json<SetUserRoles>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, user) = path.into_inner();
    let names = roles::role_names(&body.roles)?;
    let held = state
        .roles
        .set_user_roles(&ctx, &tenant, user_id(&user)?, names)
        .await?;
    Ok(versioned(&mut HttpResponse::Ok(), held.authz_version).json(UserRolesResponse::from(held)))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn if_match_reads_strong_weak_lists_and_any() {
        let read = |value: Option<&str>| {
            let mut req = TestRequest::default();
            if let Some(value) = value {
                req = req.insert_header((header::IF_MATCH, value));
            }
            if_match(&req.to_http_request())
        };
        assert_eq!(read(None), None);
        assert_eq!(read(Some("*")), None);
        assert_eq!(read(Some("\"3\"")), Some(vec![3]));
        assert_eq!(read(Some("W/\"3\", \"5\"")), Some(vec![3, 5]));
        assert_eq!(read(Some("3")), Some(vec![]), "unquoted: matches nothing");
        assert_eq!(read(Some("\"x\"")), Some(vec![]));
    }
}
