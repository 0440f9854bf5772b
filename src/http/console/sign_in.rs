//! Signing in to the console and out of it. Sign-in is the API's login
//! (same limits, same refusals, `Purpose::Console`: admins only), and every
//! refusal reads the same, whatever its reason.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::session::{self, ConsoleAdmin};
use super::{ConsoleError, html, html_with};
use crate::domain::accounts::login::Purpose;
use crate::domain::accounts::password::Password;
use crate::http::body;
use crate::http::extract::SessionClient;
use crate::http::handlers::sessions::limited_login;
use crate::http::problem::ApiError;
use crate::http::state::AppState;

/// What every refused sign-in says.
const REFUSED: &str = "Sign-in failed: check the tenant, the username and the password. \
                       Only a tenant's admins can use the console.";

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignIn<'a> {
    tenant: &'a str,
    username: &'a str,
    error: Option<String>,
}

pub async fn page() -> Result<HttpResponse, ConsoleError> {
    let form = SignIn {
        tenant: "",
        username: "",
        error: None,
    };
    html(&form)
}

#[derive(Deserialize)]
pub struct Credentials {
    tenant: String,
    username: String,
    password: String,
}

pub async fn submit(
    state: web::Data<AppState>,
    SessionClient(client, ip): SessionClient,
    req: HttpRequest,
    body: body::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    if !session::same_origin(&req) {
        tracing::info!(reason = "cross_site", "console sign-in refused");
        return Err(ApiError::Forbidden.into());
    }
    let Credentials {
        tenant,
        username,
        password,
    } = serde_urlencoded::from_bytes(&body)
        .map_err(|e| ApiError::BadRequest(format!("form: {e}")))?;
    let password = Password::new(password);
    let purpose = Purpose::Console;
    let tokens = match limited_login(
        &state, &req, &client, ip, &tenant, &username, password, purpose,
    )
    .await
    {
        Ok(tokens) => tokens,
        Err(refused @ (ApiError::InvalidCredentials | ApiError::TooManyRequests(_))) => {
            let (status, error) = match &refused {
                ApiError::TooManyRequests(seconds) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Too many sign-in attempts: try again in {seconds} s."),
                ),
                _ => (StatusCode::OK, REFUSED.to_owned()),
            };
            let form = SignIn {
                tenant: &tenant,
                username: &username,
                error: Some(error),
            };
            let mut response = html_with(status, &form)?;
            if let ApiError::TooManyRequests(seconds) = refused {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
            }
            return Ok(response);
        }
        Err(other) => return Err(other.into()),
    };
    let csrf = session::new_csrf()?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console/users"))
        .insert_header((
            header::SET_COOKIE,
            session::set_cookie(&csrf, &tokens.access.access_token),
        ))
        .finish())
}

/// Ends the console session on the server, then forgets the cookie.
pub async fn sign_out(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
) -> Result<HttpResponse, ConsoleError> {
    if let Some(console) = &state.console {
        console.sign_out(admin.user, admin.sid).await?;
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, session::SIGN_IN))
        .insert_header((header::SET_COOKIE, session::clear_cookie()))
        .finish())
}
