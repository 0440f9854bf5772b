//! `/v1/tenants/{tenant}/users…`: a tenant's users and their secrets.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::page::PageQuery;
use crate::domain::accounts::password::Password;
use crate::domain::accounts::users::{NewUser, User, UserPatch};
use crate::http::body::{Bytes, Json, Query, json_object, non_null, whole_number};
use crate::http::extract::{AdminCaller, scope};
use crate::http::problem::{AdminErrors, ApiError, BodyErrors, CallerErrors, Problem};
use crate::http::state::AppState;
use crate::types::ids::{Generation, Role, UserId, Username};

#[derive(Serialize, ToSchema)]
pub struct UserResponse {
    #[schema(value_type = uuid::Uuid)]
    id: UserId,
    #[schema(value_type = String, example = "alice")]
    username: Username,
    #[schema(value_type = String, example = "member")]
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

#[derive(Serialize, ToSchema)]
pub struct UserPage {
    users: Vec<UserResponse>,
    /// Pass as `after` for the next page; null on the last one.
    next_after: Option<Uuid>,
}

/// A user id from the path; one that is not even a UUID is simply not found.
pub(crate) fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|_| ApiError::NotFound("user"))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// A-Z, a-z, 0-9 and `._@+-`, 1 to 128 characters; unique per tenant ignoring case.
    #[schema(example = "alice", pattern = "^[A-Za-z0-9._@+-]{1,128}$")]
    username: String,
    /// 8 to 1024 characters.
    #[schema(
        example = "correct horse battery staple",
        min_length = 8,
        max_length = 1024
    )]
    password: String,
    /// `member` (default) or `admin`.
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = Role, example = "member", nullable = false)]
    role: Option<String>,
}

impl CreateUser {
    pub(crate) fn validated(self) -> Result<NewUser, ApiError> {
        Ok(NewUser {
            username: Username::parse(&self.username)?,
            password: Password::parse_new(self.password)?,
            role: self.role.as_deref().map_or(Ok(Role::Member), Role::parse)?,
        })
    }
}

/// Create a user with a fresh secret.
#[utoipa::path(
    post, path = "/v1/tenants/{tenant}/users", tag = "users",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = UserResponse),
        BodyErrors,
        CallerErrors,
        AdminErrors,
        (status = 409, description = "Username taken (`user_exists`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("service_key" = ["users:write"]), ("access_token" = [])),
)]
pub async fn create(
    AdminCaller(ctx, _): AdminCaller<scope::UsersWrite>,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    body: Json<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    let new = body.into_inner().validated()?;
    let user = state.admin.create_user(&ctx, &tenant, new).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/v1/tenants/{tenant}/users/{}", user.id),
        ))
        .json(UserResponse::from(user)))
}

/// List a tenant's users in creation order.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/users", tag = "users",
    params(("tenant" = String, Path, description = "The tenant's slug"), PageQuery),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 400, description = "Invalid query", body = Problem, content_type = "application/problem+json"),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["users:read"]), ("access_token" = [])),
)]
pub async fn list(
    AdminCaller(ctx, _): AdminCaller<scope::UsersRead>,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    query: Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .admin
        .list_users(&ctx, &tenant, None, query.after, query.limit)
        .await?;
    Ok(HttpResponse::Ok().json(UserPage {
        users: page.items.into_iter().map(UserResponse::from).collect(),
        next_after: page.next_after,
    }))
}

/// Read a user.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/users/{user_id}", tag = "users",
    params(("tenant" = String, Path, description = "The tenant's slug"), ("user_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The user", body = UserResponse),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["users:read"]), ("access_token" = [])),
)]
pub async fn get(
    AdminCaller(ctx, _): AdminCaller<scope::UsersRead>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, user) = path.into_inner();
    let user = state.admin.user(&ctx, &tenant, user_id(&user)?).await?;
    Ok(HttpResponse::Ok().json(UserResponse::from(user)))
}

/// At least one member (set in `routes::AtLeastOneMember`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    /// `member` or `admin`; a change rotates the user's secret.
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = Role, nullable = false)]
    role: Option<String>,
    /// Disabling rotates the secret and ends every session.
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = bool, nullable = false)]
    disabled: Option<bool>,
    /// 8 to 1024 characters; rotates the secret and ends every session.
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = String, nullable = false, min_length = 8, max_length = 1024)]
    password: Option<String>,
}

impl PatchUser {
    pub(crate) fn validated(self) -> Result<UserPatch, ApiError> {
        Ok(UserPatch {
            role: self.role.as_deref().map(Role::parse).transpose()?,
            disabled: self.disabled,
            password: self.password.map(Password::parse_new).transpose()?,
        })
    }
}

/// Change a user's role, disabled state or password.
#[utoipa::path(
    patch, path = "/v1/tenants/{tenant}/users/{user_id}", tag = "users",
    params(("tenant" = String, Path, description = "The tenant's slug"), ("user_id" = Uuid, Path)),
    request_body = PatchUser,
    responses(
        (status = 200, description = "The updated user", body = UserResponse),
        BodyErrors,
        CallerErrors,
        AdminErrors,
        (status = 409, description = "Would leave no enabled admin (`last_admin`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("service_key" = ["users:write"]), ("access_token" = [])),
)]
pub async fn update(
    AdminCaller(ctx, _): AdminCaller<scope::UsersWrite>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Json<PatchUser>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, user) = path.into_inner();
    let patch = body.into_inner().validated()?;
    let user = state
        .admin
        .update_user(&ctx, &tenant, user_id(&user)?, patch)
        .await?;
    Ok(HttpResponse::Ok().json(UserResponse::from(user)))
}

/// Delete a user and their secrets; their tokens die.
#[utoipa::path(
    delete, path = "/v1/tenants/{tenant}/users/{user_id}", tag = "users",
    params(("tenant" = String, Path, description = "The tenant's slug"), ("user_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        CallerErrors,
        AdminErrors,
        (status = 409, description = "The last enabled admin (`last_admin`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("service_key" = ["users:write"]), ("access_token" = [])),
)]
pub async fn delete(
    AdminCaller(ctx, _): AdminCaller<scope::UsersWrite>,
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

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long tokens of the previous generation stay valid: 0 to 86400.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 0, maximum = 86400)]
    grace_seconds: u64,
}

impl RotateRequest {
    /// The body is optional (empty, or JSON `null`); when present it must be valid.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, ApiError> {
        if body.trim_ascii().is_empty() || body.trim_ascii() == b"null" {
            return Ok(Self::default());
        }
        json_object(body)
    }

    pub(crate) fn grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.grace_seconds)
    }
}

#[derive(Serialize, ToSchema)]
pub struct RotationResponse {
    #[schema(value_type = uuid::Uuid)]
    user_id: UserId,
    /// The new generation (the `kid` of new tokens).
    #[schema(value_type = i64, example = 2)]
    generation: Generation,
    previous_generation_valid_until: DateTime<Utc>,
}

/// Rotate one user's secret. Without grace, every token and session they hold dies.
#[utoipa::path(
    post, path = "/v1/tenants/{tenant}/users/{user_id}/rotate-secret", tag = "users",
    params(("tenant" = String, Path, description = "The tenant's slug"), ("user_id" = Uuid, Path)),
    request_body(content = Option<RotateRequest>, description = "Optional: none (or `null`) rotates without grace"),
    responses(
        (status = 200, description = "Rotated", body = RotationResponse),
        BodyErrors,
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["secrets:rotate"]), ("access_token" = [])),
)]
pub async fn rotate_secret(
    AdminCaller(ctx, _): AdminCaller<scope::SecretsRotate>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let (tenant, user) = path.into_inner();
    let grace = RotateRequest::parse(&body)?.grace();
    let rotation = state
        .admin
        .rotate_user_secret(&ctx, &tenant, user_id(&user)?, grace)
        .await?;
    Ok(HttpResponse::Ok().json(RotationResponse {
        user_id: rotation.user_id,
        generation: rotation.generation,
        previous_generation_valid_until: rotation.previous_generation_valid_until,
    }))
}
