//! `/v1/tenants/{tenant}/users…`: a tenant's users and their secrets.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::accounts::{NewUser, User};
use crate::domain::admin::UserPatch;
use crate::domain::ids::{Role, UserId, Username};
use crate::domain::password::Password;
use crate::http::AppState;
use crate::http::extract::AdminCaller;
use crate::http::problem::{ApiError, json_error};

#[derive(Serialize)]
pub struct UserResponse {
    id: UserId,
    username: Username,
    role: Role,
    disabled: bool,
    created_at: DateTime<Utc>,
}

impl From<User> for UserResponse {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            role: u.role,
            disabled: u.disabled,
            created_at: u.created_at,
        }
    }
}

/// `?limit=&after=` of a keyset-paginated listing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<u32>,
    pub after: Option<Uuid>,
}

/// A user id from the path; one that is not even a UUID is simply not found.
fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|_| ApiError::NotFound("user"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    username: String,
    password: String,
    #[serde(default)]
    role: Option<String>,
}

pub async fn create(
    AdminCaller(ctx): AdminCaller,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    body: web::Json<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    let CreateUser {
        username,
        password,
        role,
    } = body.into_inner();
    let new = NewUser {
        username: Username::parse(&username)?,
        password: Password::parse_new(password)?,
        role: role.as_deref().map_or(Ok(Role::Member), Role::parse)?,
    };
    let user = state.admin.create_user(&ctx, &tenant, new).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/v1/tenants/{tenant}/users/{}", user.id),
        ))
        .json(UserResponse::from(user)))
}

pub async fn list(
    AdminCaller(ctx): AdminCaller,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .admin
        .list_users(&ctx, &tenant, query.after, query.limit)
        .await?;
    let users: Vec<UserResponse> = page.items.into_iter().map(UserResponse::from).collect();
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "users": users, "next_after": page.next_after })))
}

pub async fn get(
    AdminCaller(ctx): AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, user) = path.into_inner();
    let user = state.admin.user(&ctx, &tenant, user_id(&user)?).await?;
    Ok(HttpResponse::Ok().json(UserResponse::from(user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    role: Option<String>,
    disabled: Option<bool>,
    password: Option<String>,
}

pub async fn update(
    AdminCaller(ctx): AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<PatchUser>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, user) = path.into_inner();
    let PatchUser {
        role,
        disabled,
        password,
    } = body.into_inner();
    let patch = UserPatch {
        role: role.as_deref().map(Role::parse).transpose()?,
        disabled,
        password: password.map(Password::parse_new).transpose()?,
    };
    let user = state
        .admin
        .update_user(&ctx, &tenant, user_id(&user)?, patch)
        .await?;
    Ok(HttpResponse::Ok().json(UserResponse::from(user)))
}

pub async fn delete(
    AdminCaller(ctx): AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, user) = path.into_inner();
    state
        .admin
        .delete_user(&ctx, &tenant, user_id(&user)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    #[serde(default)]
    grace_seconds: u64,
}

pub async fn rotate_secret(
    AdminCaller(ctx): AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (tenant, user) = path.into_inner();
    // The body is optional; when present it must be valid.
    let request: RotateRequest = if body.is_empty() {
        RotateRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| json_error(actix_web::error::JsonPayloadError::Deserialize(e)))?
    };
    let grace = std::time::Duration::from_secs(request.grace_seconds);
    let rotation = state
        .admin
        .rotate_user_secret(&ctx, &tenant, user_id(&user)?, grace)
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "user_id": rotation.user_id,
        "generation": rotation.generation,
        "previous_generation_valid_until": rotation.previous_generation_valid_until,
    })))
}
