//! A user's page: their state, role, password, secret, live sessions and
//! custom roles, each changed by the domain function the API calls; and
//! deleting them, after a confirmation.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::session::{ConsoleAdmin, Form, FormBody};
use super::{Chrome, ConsoleError, Done, html, see_other, when};
use crate::domain::DomainError;
use crate::domain::accounts::password::Password;
use crate::domain::accounts::users::UserPatch;
use crate::domain::authz::roles;
use crate::http::handlers::users::user_id;
use crate::http::problem::ApiError;
use crate::http::state::AppState;
use crate::types::ids::{Role, SessionId, UserId};

/// The longest grace a rotation may give the old secret (as on the API).
const MAX_GRACE: Duration = Duration::from_secs(86_400);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users/{id}", web::get().to(show))
        .route("/users/{id}/disabled", web::post().to(set_disabled))
        .route("/users/{id}/role", web::post().to(set_role))
        .route("/users/{id}/password", web::post().to(set_password))
        .route("/users/{id}/rotate", web::post().to(rotate))
        .route("/users/{id}/sessions/end-all", web::post().to(end_all))
        .route(
            "/users/{id}/sessions/{sid}/end",
            web::post().to(end_session),
        )
        .route("/users/{id}/roles", web::post().to(set_roles))
        .route("/users/{id}/delete", web::get().to(confirm_delete))
        .route("/users/{id}/delete", web::post().to(delete));
}

struct SessionLine {
    id: String,
    created: String,
    last_used: String,
    ip: String,
    user_agent: String,
    /// The session of this console.
    this_console: bool,
}

struct RoleChoice {
    name: String,
    held: bool,
}

#[derive(Template)]
#[template(path = "console/user.html")]
struct UserPage {
    chrome: Chrome,
    id: String,
    username: String,
    role: &'static str,
    disabled: bool,
    created: String,
    sessions: Vec<SessionLine>,
    roles: Vec<RoleChoice>,
    permissions: Vec<String>,
}

pub async fn show(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    id: web::Path<String>,
    query: web::Query<Done>,
) -> Result<HttpResponse, ConsoleError> {
    let chrome = Chrome::new("users", &admin).notice(query.done.as_deref());
    html(&user_page(&state, &admin, user_id(&id)?, chrome).await?)
}

async fn user_page(
    state: &AppState,
    admin: &ConsoleAdmin,
    id: UserId,
    chrome: Chrome,
) -> Result<UserPage, ConsoleError> {
    let (ctx, tenant) = (&admin.ctx, admin.tenant.as_str());
    let user = state.admin.user(ctx, tenant, id).await?;
    let sessions = state.admin.user_sessions(ctx, tenant, id).await?;
    let held = state.roles.user_roles(ctx, tenant, id).await?;
    let defined = state.roles.list(ctx, tenant, None, Some(200)).await?;
    Ok(UserPage {
        chrome,
        id: user.id.to_string(),
        username: user.username.as_str().to_owned(),
        role: user.role.as_str(),
        disabled: user.disabled,
        created: when(user.created_at),
        sessions: sessions
            .into_iter()
            .map(|s| SessionLine {
                id: s.id.to_string(),
                created: when(s.created_at),
                last_used: when(s.last_used_at),
                ip: s.ip.unwrap_or_default(),
                user_agent: s.user_agent.unwrap_or_default(),
                this_console: s.id == admin.sid,
            })
            .collect(),
        roles: defined
            .roles
            .into_iter()
            .map(|role| RoleChoice {
                held: held.roles.contains(&role.name),
                name: role.name.to_string(),
            })
            .collect(),
        permissions: held.permissions.iter().map(ToString::to_string).collect(),
    })
}

/// After an action on user `id`: back to their page with the notice
/// `done`, or their page again with the error.
async fn after(
    state: &AppState,
    admin: &ConsoleAdmin,
    id: UserId,
    outcome: Result<(), ApiError>,
    done: &str,
) -> Result<HttpResponse, ConsoleError> {
    match outcome {
        Ok(()) => Ok(see_other(&format!("/console/users/{id}"), done)),
        Err(e) => {
            e.log_cause();
            let chrome = Chrome::new("users", admin).failed(&e);
            html(&user_page(state, admin, id, chrome).await?)
        }
    }
}

/// Applies `patch` to user `id` (the API's PATCH).
async fn update(
    state: &AppState,
    admin: &ConsoleAdmin,
    id: UserId,
    patch: Result<UserPatch, ApiError>,
) -> Result<HttpResponse, ConsoleError> {
    let outcome = match patch {
        Ok(patch) => state
            .admin
            .update_user(&admin.ctx, &admin.tenant, id, patch)
            .await
            .map(drop)
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    after(state, admin, id, outcome, "updated").await
}

#[derive(Deserialize)]
pub struct DisabledForm {
    disabled: bool,
}

pub async fn set_disabled(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    id: web::Path<String>,
    Form(form): Form<DisabledForm>,
) -> Result<HttpResponse, ConsoleError> {
    let patch = UserPatch {
        disabled: Some(form.disabled),
        ..UserPatch::default()
    };
    update(&state, &admin, user_id(&id)?, Ok(patch)).await
}

#[derive(Deserialize)]
pub struct RoleForm {
    role: String,
}

pub async fn set_role(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    id: web::Path<String>,
    Form(form): Form<RoleForm>,
) -> Result<HttpResponse, ConsoleError> {
    let patch = Role::parse(&form.role).map(|role| UserPatch {
        role: Some(role),
        ..UserPatch::default()
    });
    update(&state, &admin, user_id(&id)?, patch.map_err(Into::into)).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    password: String,
}

pub async fn set_password(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    id: web::Path<String>,
    Form(form): Form<PasswordForm>,
) -> Result<HttpResponse, ConsoleError> {
    let patch = Password::parse_new(form.password).map(|password| UserPatch {
        password: Some(password),
        ..UserPatch::default()
    });
    update(&state, &admin, user_id(&id)?, patch.map_err(Into::into)).await
}

#[derive(Deserialize)]
pub struct RotateForm {
    grace_seconds: u64,
}

pub async fn rotate(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    id: web::Path<String>,
    Form(form): Form<RotateForm>,
) -> Result<HttpResponse, ConsoleError> {
    let id = user_id(&id)?;
    let grace = Duration::from_secs(form.grace_seconds);
    let outcome = if grace > MAX_GRACE {
        Err(ApiError::Validation {
            field: "grace_seconds",
            detail: "must be 0 to 86400 seconds".into(),
        })
    } else {
        let rotated = state
            .admin
            .rotate_user_secret(&admin.ctx, &admin.tenant, id, grace);
        rotated.await.map(drop).map_err(ApiError::from)
    };
    after(&state, &admin, id, outcome, "rotated").await
}

pub async fn end_session(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    let (id, sid) = path.into_inner();
    let id = user_id(&id)?;
    let sid = SessionId::parse(&sid).map_err(|_| ApiError::NotFound("session"))?;
    let ended = state
        .admin
        .end_user_session(&admin.ctx, &admin.tenant, id, sid);
    let outcome = ended.await.map_err(ApiError::from);
    after(&state, &admin, id, outcome, "session_ended").await
}

pub async fn end_all(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = user_id(&id)?;
    let ended = state.admin.end_user_sessions(&admin.ctx, &admin.tenant, id);
    let outcome = ended.await.map(drop).map_err(ApiError::from);
    after(&state, &admin, id, outcome, "sessions_ended").await
}

pub async fn set_roles(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    id: web::Path<String>,
    form: web::ReqData<FormBody>,
) -> Result<HttpResponse, ConsoleError> {
    let id = user_id(&id)?;
    let outcome = async {
        let names = roles::role_names(&form.values("role")).map_err(DomainError::from)?;
        let set = state
            .roles
            .set_user_roles(&admin.ctx, &admin.tenant, id, names);
        Ok::<_, ApiError>(set.await.map(drop)?)
    };
    let outcome = outcome.await;
    after(&state, &admin, id, outcome, "updated").await
}

#[derive(Template)]
#[template(path = "console/delete_user.html")]
struct ConfirmDelete {
    chrome: Chrome,
    id: String,
    username: String,
}

pub async fn confirm_delete(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let user = state
        .admin
        .user(&admin.ctx, &admin.tenant, user_id(&id)?)
        .await?;
    html(&ConfirmDelete {
        chrome: Chrome::new("users", &admin),
        id: user.id.to_string(),
        username: user.username.as_str().to_owned(),
    })
}

pub async fn delete(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = user_id(&id)?;
    match state.admin.delete_user(&admin.ctx, &admin.tenant, id).await {
        Ok(()) => Ok(see_other("/console/users", "deleted")),
        Err(e) => after(&state, &admin, id, Err(e.into()), "").await,
    }
}
