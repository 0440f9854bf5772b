//! `/v1/tenants…`: creating and reading tenants, tenant-wide rotation.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::accounts::users::Tenant;
use crate::http::body::Json;
use crate::http::extract::{AdminCaller, Service, scope};
use crate::http::problem::{AdminErrors, ApiError, BodyErrors, CallerErrors, Problem};
use crate::http::state::AppState;
use crate::types::ids::{TenantId, TenantName, TenantSlug};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Lowercase a-z, 0-9 and '-', 1 to 63 characters.
    #[schema(example = "acme", pattern = "^[a-z0-9-]{1,63}$")]
    slug: String,
    /// 1 to 200 characters, no control characters, no whitespace at either end.
    #[schema(
        example = "Acme Inc",
        pattern = "^[^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]([^\\u0000-\\u001F\\u007F-\\u009F]{0,198}[^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000])?$"
    )]
    name: String,
}

impl CreateTenant {
    pub(crate) fn validated(&self) -> Result<(TenantSlug, TenantName), ApiError> {
        Ok((
            TenantSlug::parse(&self.slug)?,
            TenantName::parse(&self.name)?,
        ))
    }
}

#[derive(Serialize, ToSchema)]
pub struct TenantResponse {
    #[schema(value_type = uuid::Uuid)]
    id: TenantId,
    #[schema(value_type = String, example = "acme")]
    slug: TenantSlug,
    #[schema(value_type = String, example = "Acme Inc")]
    name: TenantName,
    created_at: DateTime<Utc>,
}

impl From<Tenant> for TenantResponse {
    fn from(t: Tenant) -> Self {
        Self {
            id: t.id,
            slug: t.slug,
            name: t.name,
            created_at: t.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RotatedResponse {
    /// Users whose secret was rotated.
    rotated: u64,
}

/// Create a tenant.
#[utoipa::path(
    post, path = "/v1/tenants", tag = "tenants",
    request_body = CreateTenant,
    responses(
        (status = 201, description = "Created", body = TenantResponse),
        BodyErrors,
        CallerErrors,
        (status = 409, description = "Slug taken (`tenant_exists`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("service_key" = ["tenants:write"])),
)]
pub async fn create(
    Service(caller, _): Service<scope::TenantsWrite>,
    state: web::Data<AppState>,
    body: Json<CreateTenant>,
) -> Result<HttpResponse, ApiError> {
    let (slug, name) = body.validated()?;
    let tenant = state.admin.create_tenant(slug, name).await?;
    tracing::info!(actor = %caller.actor.id(), key_id = %caller.key, tenant = %tenant.slug, "tenant created by service");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/tenants/{}", tenant.slug)))
        .json(TenantResponse::from(tenant)))
}

/// Read a tenant.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    responses(
        (status = 200, description = "The tenant", body = TenantResponse),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = []), ("access_token" = [])),
)]
pub async fn get(
    AdminCaller(ctx, _): AdminCaller<scope::Any>,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.admin.tenant(&ctx, &tenant).await?;
    Ok(HttpResponse::Ok().json(TenantResponse::from(tenant)))
}

/// Rotate every user's secret (incident response): every token of the tenant dies.
#[utoipa::path(
    post, path = "/v1/tenants/{tenant}/rotate-secrets", tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    responses(
        (status = 200, description = "Rotated", body = RotatedResponse),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["secrets:rotate"]), ("access_token" = [])),
)]
pub async fn rotate_secrets(
    AdminCaller(ctx, _): AdminCaller<scope::SecretsRotate>,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rotated = state.admin.rotate_tenant_secrets(&ctx, &tenant).await?;
    Ok(HttpResponse::Ok().json(RotatedResponse { rotated }))
}
