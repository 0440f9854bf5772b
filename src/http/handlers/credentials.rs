//! `/v1/service-credentials…` and `/v1/tenants/{tenant}/service-credentials…`:
//! scoped service credentials. The key is shown once, when created.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::page::PageQuery;
use crate::domain::admin::credentials::{CreatedCredential, Credential, NewCredential};
use crate::domain::audit::AuditContext;
use crate::domain::page::Page;
use crate::http::body::{Json, Query, some_whole_number};
use crate::http::extract::{AdminCaller, scope};
use crate::http::problem::{AdminErrors, ApiError, BodyErrors, CallerErrors};
use crate::http::state::AppState;
use crate::types::ids::{CredentialId, CredentialName};
use crate::types::scopes::{Scope, Scopes};

type Manager = AdminCaller<scope::CredentialsWrite>;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCredential {
    /// What the credential is for: 1 to 200 characters, no control
    /// characters, no whitespace at either end.
    #[schema(
        example = "billing-service introspection",
        pattern = "^[^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]([^\\u0000-\\u001F\\u007F-\\u009F]{0,198}[^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000])?$"
    )]
    name: String,
    /// The tenant's slug; null or absent: the root level (every tenant).
    #[serde(default)]
    #[schema(example = "acme", pattern = "^[a-z0-9-]{1,63}$")]
    tenant: Option<String>,
    /// At least one (a repeated one counts once), never more than the
    /// caller holds. `tenants:write` only with no tenant.
    #[schema(value_type = Vec<Scope>, example = json!(["introspect"]), min_items = 1)]
    scopes: Vec<String>,
    /// Seconds until it expires (1 to ten years); absent: never.
    #[serde(default, deserialize_with = "some_whole_number")]
    #[schema(nullable = false, minimum = 1, maximum = 315360000)]
    expires_in: Option<u64>,
}

/// As `CreateCredential`, for a tenant's route (the path names the tenant).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantCredential {
    /// As in `CreateCredential`.
    #[schema(
        example = "billing-service introspection",
        pattern = "^[^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]([^\\u0000-\\u001F\\u007F-\\u009F]{0,198}[^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000])?$"
    )]
    name: String,
    /// At least one (a repeated one counts once), never more than the
    /// caller holds.
    #[schema(value_type = Vec<TenantScope>, example = json!(["introspect"]), min_items = 1)]
    scopes: Vec<String>,
    #[serde(default, deserialize_with = "some_whole_number")]
    #[schema(nullable = false, minimum = 1, maximum = 315360000)]
    expires_in: Option<u64>,
}

/// A scope a tenant's credential may hold: every one but `tenants:write`
/// (documentation only), made from `Scope` itself.
pub struct TenantScope;

impl utoipa::PartialSchema for TenantScope {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let names = Scope::ALL
            .into_iter()
            .filter(|scope| scope.is_tenant_scope())
            .map(Scope::as_str);
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(names))
            .into()
    }
}

impl ToSchema for TenantScope {}

fn new_credential(
    name: &str,
    scopes: &[String],
    expires_in: Option<u64>,
) -> Result<NewCredential, ApiError> {
    Ok(NewCredential {
        name: CredentialName::parse(name)?,
        scopes: Scopes::parse(scopes)?,
        expires_in,
    })
}

#[derive(Serialize, ToSchema)]
pub struct CredentialResponse {
    id: Uuid,
    name: String,
    /// The tenant's slug; null: the root level.
    tenant: Option<String>,
    #[schema(value_type = Vec<Scope>)]
    scopes: Vec<&'static str>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    /// Coarse: written at most once a minute.
    last_used_at: Option<DateTime<Utc>>,
    /// `<actor kind>:<actor id>`, as in the audit log.
    #[schema(example = "service:3f2a9c0d41e6b7a8")]
    created_by: String,
}

impl From<Credential> for CredentialResponse {
    fn from(c: Credential) -> Self {
        Self {
            id: c.id.as_uuid(),
            name: c.name.as_str().to_owned(),
            tenant: c.tenant.map(|slug| slug.as_str().to_owned()),
            scopes: c.scopes.names(),
            created_at: c.created_at,
            expires_at: c.expires_at,
            last_used_at: c.last_used_at,
            created_by: c.created_by,
        }
    }
}

/// A new credential, with its key: shown in this answer only.
#[derive(Serialize, ToSchema)]
pub struct CreatedCredentialResponse {
    #[serde(flatten)]
    credential: CredentialResponse,
    /// `tjs_` and 43 base64url characters (256 random bits). Not stored:
    /// keep it now.
    #[schema(example = "tjs_8Jv0n3bqk1hQfY2m9cR7tLw4xZpA6sDgE5uHiKoN1yV")]
    key: String,
}

#[derive(Serialize, ToSchema)]
pub struct CredentialPage {
    credentials: Vec<CredentialResponse>,
    /// Pass as `after` for the next page; null on the last one.
    next_after: Option<Uuid>,
}

fn created(created: CreatedCredential) -> HttpResponse {
    let id = created.credential.id;
    HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .insert_header((header::LOCATION, format!("/v1/service-credentials/{id}")))
        .json(CreatedCredentialResponse {
            key: created.key.expose().to_owned(),
            credential: created.credential.into(),
        })
}

fn listed(page: Page<Credential>) -> HttpResponse {
    HttpResponse::Ok().json(CredentialPage {
        credentials: page.items.into_iter().map(Into::into).collect(),
        next_after: page.next_after,
    })
}

/// A credential id from the path; one that is not even a UUID is simply not found.
fn credential_id(raw: &str) -> Result<CredentialId, ApiError> {
    CredentialId::parse(raw).map_err(|_| ApiError::NotFound("credential"))
}

async fn create_in(
    state: &AppState,
    ctx: &AuditContext,
    tenant: Option<&str>,
    new: NewCredential,
) -> Result<HttpResponse, ApiError> {
    Ok(created(
        state.admin.create_credential(ctx, tenant, new).await?,
    ))
}

/// Create a service credential. A tenant's caller creates its own tenant's
/// only; nobody grants a scope they lack.
#[utoipa::path(
    post, path = "/v1/service-credentials", tag = "credentials",
    request_body = CreateCredential,
    responses(
        (status = 201, description = "Created; the key is in this answer only", body = CreatedCredentialResponse),
        BodyErrors,
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["credentials:write"]), ("access_token" = [])),
)]
pub async fn create(
    AdminCaller(ctx, _): Manager,
    state: web::Data<AppState>,
    body: Json<CreateCredential>,
) -> Result<HttpResponse, ApiError> {
    let new = new_credential(&body.name, &body.scopes, body.expires_in)?;
    create_in(&state, &ctx, body.tenant.as_deref(), new).await
}

/// Live service credentials: every one at the root level, a tenant's own
/// for a tenant's caller. Never a key.
#[utoipa::path(
    get, path = "/v1/service-credentials", tag = "credentials",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of credentials", body = CredentialPage),
        (status = 400, description = "Invalid query", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["credentials:write"]), ("access_token" = [])),
)]
pub async fn list(
    AdminCaller(ctx, _): Manager,
    state: web::Data<AppState>,
    query: Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .admin
        .credentials(&ctx, None, query.after, query.limit)
        .await?;
    Ok(listed(page))
}

/// Revoke a service credential: it fails on every instance within a second.
/// Revoking it again answers 204 too (a retry is safe).
#[utoipa::path(
    delete, path = "/v1/service-credentials/{credential_id}", tag = "credentials",
    params(("credential_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Revoked"),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["credentials:write"]), ("access_token" = [])),
)]
pub async fn revoke(
    AdminCaller(ctx, _): Manager,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .admin
        .revoke_credential(&ctx, None, credential_id(&id)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Create a credential of this tenant (tenant scopes only).
#[utoipa::path(
    post, path = "/v1/tenants/{tenant}/service-credentials", tag = "credentials",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    request_body = CreateTenantCredential,
    responses(
        (status = 201, description = "Created; the key is in this answer only", body = CreatedCredentialResponse),
        BodyErrors,
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["credentials:write"]), ("access_token" = [])),
)]
pub async fn create_in_tenant(
    AdminCaller(ctx, _): Manager,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    body: Json<CreateTenantCredential>,
) -> Result<HttpResponse, ApiError> {
    let new = new_credential(&body.name, &body.scopes, body.expires_in)?;
    create_in(&state, &ctx, Some(&tenant), new).await
}

/// This tenant's live credentials. Never a key.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/service-credentials", tag = "credentials",
    params(("tenant" = String, Path, description = "The tenant's slug"), PageQuery),
    responses(
        (status = 200, description = "A page of credentials", body = CredentialPage),
        (status = 400, description = "Invalid query", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["credentials:write"]), ("access_token" = [])),
)]
pub async fn list_in_tenant(
    AdminCaller(ctx, _): Manager,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    query: Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .admin
        .credentials(&ctx, Some(&tenant), query.after, query.limit)
        .await?;
    Ok(listed(page))
}

/// Revoke a credential of this tenant.
#[utoipa::path(
    delete, path = "/v1/tenants/{tenant}/service-credentials/{credential_id}", tag = "credentials",
    params(("tenant" = String, Path, description = "The tenant's slug"), ("credential_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Revoked"),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["credentials:write"]), ("access_token" = [])),
)]
pub async fn revoke_in_tenant(
    AdminCaller(ctx, _): Manager,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    state
        .admin
        .revoke_credential(&ctx, Some(&tenant), credential_id(&id)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
