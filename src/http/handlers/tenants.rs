//! `/v1/tenants…`: creating and reading tenants, tenant-wide rotation.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::accounts::{self, Tenant};
use crate::domain::ids::{TenantId, TenantName, TenantSlug};
use crate::http::AppState;
use crate::http::extract::{AdminCaller, ServiceCaller};
use crate::http::problem::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    slug: String,
    name: String,
}

#[derive(Serialize)]
pub struct TenantResponse {
    id: TenantId,
    slug: TenantSlug,
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

pub async fn create(
    caller: ServiceCaller,
    state: web::Data<AppState>,
    body: web::Json<CreateTenant>,
) -> Result<HttpResponse, ApiError> {
    let slug = TenantSlug::parse(&body.slug)?;
    let name = TenantName::parse(&body.name)?;
    let tenant = accounts::create_tenant(&state.db, slug, name).await?;
    tracing::info!(actor = %caller.0, tenant = %tenant.slug, "tenant created by service");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/tenants/{}", tenant.slug)))
        .json(TenantResponse::from(tenant)))
}

pub async fn get(
    AdminCaller(ctx): AdminCaller,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.admin.tenant(&ctx, &tenant).await?;
    Ok(HttpResponse::Ok().json(TenantResponse::from(tenant)))
}

/// Incident response: every user of the tenant gets a new secret.
pub async fn rotate_secrets(
    AdminCaller(ctx): AdminCaller,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rotated = state.admin.rotate_tenant_secrets(&ctx, &tenant).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "rotated": rotated })))
}
