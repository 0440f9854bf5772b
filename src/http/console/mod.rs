//! The admin console at `/console/`: a tenant's admins manage users,
//! sessions, roles, service credentials and webhooks, and read the audit
//! log, in a browser.
//!
//! Server-rendered: askama templates (`templates/console/`, checked at
//! compile time, every value escaped), htmx for the few partial updates,
//! assets embedded in the binary (`assets`). Each handler calls the same
//! domain function as the API's, with the signed-in admin as the actor, so
//! every change is audited the same way. `session` says who is signed in and
//! guards every change (CSRF token and same origin); `Chrome` is what every
//! page shows around its content. Off with `TENANT_JWT_CONSOLE=false`.

mod assets;
mod audit;
mod credentials;
mod roles;
pub mod session;
mod sign_in;
mod user;
mod users;
mod webhooks;

use actix_web::http::{StatusCode, header};
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{HttpResponse, ResponseError, guard, web};
use askama::Template;

use super::problem::ApiError;
use super::state::AppState;
use crate::domain::DomainError;

/// Every console answer's policy: nothing but our own scripts, styles and
/// images; no inline code, no framing, forms posting only to us.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// Registers the console's routes under `/console`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let headers = DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .add((header::REFERRER_POLICY, "same-origin"))
        .add((header::X_FRAME_OPTIONS, "DENY"));
    // Off (`TENANT_JWT_CONSOLE=false`): the scope matches nothing, and every
    // `/console` path is the usual 404.
    let enabled = guard::fn_guard(|ctx| {
        ctx.app_data::<web::Data<AppState>>()
            .is_some_and(|state| state.console.is_some())
    });
    cfg.service(
        web::scope("/console")
            .guard(enabled)
            .wrap(headers)
            .route("/assets/{file}", web::get().to(assets::serve))
            .route("/sign-in", web::get().to(sign_in::page))
            .route("/sign-in", web::post().to(sign_in::submit))
            .service(
                web::scope("")
                    .wrap(from_fn(session::guard))
                    .route("/", web::get().to(users::home))
                    .route("/sign-out", web::post().to(sign_in::sign_out))
                    .configure(users::routes)
                    .configure(roles::routes)
                    .configure(credentials::routes)
                    .configure(webhooks::routes)
                    .route("/audit", web::get().to(audit::page)),
            ),
    );
}

/// The query of a page a change redirects back to: the notice it names.
#[derive(serde::Deserialize)]
pub struct Done {
    pub done: Option<String>,
}

/// What every signed-in page shows around its content.
pub struct Chrome {
    /// The section the page belongs to, for the navigation.
    pub section: &'static str,
    pub tenant: String,
    pub csrf: String,
    /// What the last action did.
    pub notice: Option<&'static str>,
    /// Why the last action failed: the problem's title (and detail).
    pub error: Option<String>,
}

impl Chrome {
    pub fn new(section: &'static str, admin: &session::ConsoleAdmin) -> Self {
        Self {
            section,
            tenant: admin.tenant.clone(),
            csrf: admin.csrf.clone(),
            notice: None,
            error: None,
        }
    }

    /// With the notice `done` names (from a redirect after a change).
    pub fn notice(mut self, done: Option<&str>) -> Self {
        self.notice = done.and_then(notice);
        self
    }

    /// With the error an action failed with.
    pub fn failed(mut self, error: &ApiError) -> Self {
        self.error = Some(describe(error));
        self
    }
}

/// The message of each `?done=` a redirect after a change may carry.
fn notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "created" => "Created.",
        "updated" => "Saved.",
        "deleted" => "Deleted.",
        "rotated" => {
            "Secret rotated: the user's earlier tokens are refused (after the grace period, if any)."
        }
        "session_ended" => "Session ended: its tokens are refused everywhere.",
        "sessions_ended" => "Every session of the user ended.",
        "revoked" => "Revoked.",
        "retried" => "Delivery scheduled again.",
        _ => return None,
    })
}

/// A failure as a page shows it: the problem's title, and its detail when
/// it has one (validation errors).
pub fn describe(error: &ApiError) -> String {
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.title()),
        None => error.title().to_owned(),
    }
}

/// A rendered page.
pub fn html(page: &impl Template) -> Result<HttpResponse, ConsoleError> {
    html_with(StatusCode::OK, page)
}

/// A rendered page with `status`. A form shown again with its error is a
/// 200, as browsers expect (any other status is an error in their console).
pub fn html_with(status: StatusCode, page: &impl Template) -> Result<HttpResponse, ConsoleError> {
    let body = page
        .render()
        .map_err(|e| ApiError::Internal(Some(Box::new(e))))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

/// After a change: back to `to`, with the notice `done` names.
pub fn see_other(to: &str, done: &str) -> HttpResponse {
    let separator = if to.contains('?') { '&' } else { '?' };
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("{to}{separator}done={done}")))
        .finish()
}

/// A console failure: an `ApiError` shown as a page instead of problem+json
/// (the request's log line still gets its code and cause).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ConsoleError(pub ApiError);

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<DomainError> for ConsoleError {
    fn from(e: DomainError) -> Self {
        Self(e.into())
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    status: u16,
    message: &'a str,
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = describe(&self.0);
        let page = ErrorPage {
            status: status.as_u16(),
            message: &message,
        };
        let mut response = HttpResponse::build(status);
        response.content_type("text/html; charset=utf-8");
        if let ApiError::TooManyRequests(seconds) = &self.0 {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if let ApiError::Unavailable(_) = &self.0 {
            response.insert_header((header::RETRY_AFTER, "1"));
        }
        response.body(page.render().unwrap_or_else(|_| message.clone()))
    }
}

/// A date and time as pages show it (UTC, to the second).
pub fn when(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
