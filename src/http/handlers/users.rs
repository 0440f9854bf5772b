//! `POST /v1/tenants/{tenant}/users`.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::accounts::{self, NewUser, User};
use crate::domain::ids::{Role, TenantSlug, UserId, Username};
use crate::domain::password::Password;
use crate::http::AppState;
use crate::http::extract::ServiceCaller;
use crate::http::problem::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    username: String,
    password: String,
    #[serde(default)]
    role: Option<String>,
}

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

pub async fn create(
    caller: ServiceCaller,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    body: web::Json<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    let CreateUser {
        username,
        password,
        role,
    } = body.into_inner();
    let tenant = TenantSlug::parse(&tenant).map_err(|_| ApiError::NotFound("tenant"))?;
    let new = NewUser {
        username: Username::parse(&username)?,
        password: Password::parse_new(password)?,
        role: role.as_deref().map_or(Ok(Role::Member), Role::parse)?,
    };
    let user =
        accounts::create_user(&state.db, &state.hasher, &state.master_key, &tenant, new).await?;
    tracing::info!(actor = %caller.0, %tenant, user_id = %user.id, "user created by service");
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/v1/tenants/{tenant}/users/{}", user.id),
        ))
        .json(UserResponse::from(user)))
}
