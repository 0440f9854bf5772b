//! `/v1/me/…`: what signed-in users do for themselves: change their password,
//! see where they are signed in, end a session.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::sessions::{TokenResponse, token_response};
use crate::domain::accounts::password::Password;
use crate::domain::accounts::sessions::SessionInfo;
use crate::http::body::{Json, no_store_json};
use crate::http::extract::{Authenticated, SessionClient};
use crate::http::problem::{ApiError, BodyErrors, CallerErrors, Problem};
use crate::http::state::AppState;
use crate::types::ids::SessionId;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    current_password: String,
    /// 8 to 1024 characters.
    #[schema(min_length = 8, max_length = 1024)]
    new_password: String,
}

/// Change one's own password: every other session and every earlier token
/// of the user dies; the answer is a new session's pair.
#[utoipa::path(
    post, path = "/v1/me/password", tag = "account",
    request_body = ChangePassword,
    responses(
        (status = 200, description = "Changed; a new session", body = TokenResponse),
        BodyErrors,
        CallerErrors,
    ),
    security(("access_token" = [])),
)]
pub async fn change_password(
    state: web::Data<AppState>,
    Authenticated(verified): Authenticated,
    SessionClient(client, ip): SessionClient,
    body: Json<ChangePassword>,
) -> Result<HttpResponse, ApiError> {
    let ChangePassword {
        current_password,
        new_password,
    } = body.into_inner();
    let record = &verified.record;
    // The same per-account allowance as login: guessing here costs as much.
    state
        .limits
        .check_login(ip, record.tenant_slug.as_str(), record.username.as_str())
        .await?;
    let tokens = state
        .accounts
        .change_password(
            record.user_id,
            record.tenant_id,
            Password::new(current_password),
            new_password,
            &client,
        )
        .await?;
    Ok(token_response(&tokens))
}

/// A live session.
#[derive(Serialize, ToSchema)]
pub struct SessionResponse {
    #[schema(value_type = uuid::Uuid)]
    id: SessionId,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    /// The session of the token that asked.
    current: bool,
    /// As sent at the last login or refresh, at most 256 characters.
    user_agent: Option<String>,
    /// The client's address at the last login or refresh.
    ip: Option<String>,
}

impl From<SessionInfo> for SessionResponse {
    fn from(s: SessionInfo) -> Self {
        Self {
            id: s.id,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            current: s.current,
            user_agent: s.user_agent,
            ip: s.ip,
        }
    }
}

/// The live sessions of a user, the 100 most recently used.
#[derive(Serialize, ToSchema)]
pub struct SessionList {
    sessions: Vec<SessionResponse>,
}

impl From<Vec<SessionInfo>> for SessionList {
    fn from(sessions: Vec<SessionInfo>) -> Self {
        Self {
            sessions: sessions.into_iter().map(SessionResponse::from).collect(),
        }
    }
}

/// One's own live sessions, most recently used first (at most 100).
#[utoipa::path(
    get, path = "/v1/me/sessions", tag = "account",
    responses(
        (status = 200, description = "The sessions", body = SessionList),
        CallerErrors,
    ),
    security(("access_token" = [])),
)]
pub async fn sessions(
    state: web::Data<AppState>,
    Authenticated(verified): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let sessions = state
        .sessions
        .list(verified.record.user_id, Some(verified.claims.sid))
        .await?;
    Ok(no_store_json(SessionList::from(sessions)))
}

/// A session id from the path; one that is not even a UUID is not found.
pub(crate) fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(raw).map_err(|_| ApiError::NotFound("session"))
}

/// End one of one's sessions ("sign out that device"): its tokens die
/// everywhere; the others go on.
#[utoipa::path(
    delete, path = "/v1/me/sessions/{session_id}", tag = "account",
    params(("session_id" = uuid::Uuid, Path)),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "Not one of the user's sessions", body = Problem, content_type = "application/problem+json"),
        CallerErrors,
    ),
    security(("access_token" = [])),
)]
pub async fn end_session(
    state: web::Data<AppState>,
    Authenticated(verified): Authenticated,
    session: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = verified.record.user_id;
    state
        .sessions
        .end(user, session_id(&session)?, "ended_by_user", None)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
