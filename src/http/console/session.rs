//! Who a console request comes from, and whether it may change anything.
//!
//! The session lives in one cookie, `__Host-tj_console` (`Secure`,
//! `HttpOnly`, `SameSite=Strict`, `Path=/`, no `Domain`): the session's CSRF
//! token and its access token, `<csrf>.<jwt>`. `guard` runs before every
//! console page but the sign-in page and the assets: it resumes the session
//! (`ConsoleSessions::resume`: verified as on the API, renewed every minute,
//! ended idle or old), refuses a state-changing request that is not
//! same-origin (`Sec-Fetch-Site`, else `Origin` against `Host`) or lacks the
//! CSRF token (header `X-CSRF-Token` from htmx, field `_csrf` from a form),
//! and hands the handler a `ConsoleAdmin` and the form it sent.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::ConsoleError;
use crate::domain::accounts::sessions::Client;
use crate::domain::audit::{Actor, AuditContext};
use crate::domain::error::DomainError;
use crate::http::body;
use crate::http::extract::cookie;
use crate::http::observe;
use crate::http::problem::ApiError;
use crate::http::state::AppState;
use crate::types::ids::{SessionId, UserId};

pub const COOKIE: &str = "__Host-tj_console";
pub const SIGN_IN: &str = "/console/sign-in";
const CSRF_HEADER: &str = "x-csrf-token";
const CSRF_FIELD: &str = "_csrf";

/// The admin a console request comes from (set by `guard`).
#[derive(Clone)]
pub struct ConsoleAdmin {
    pub ctx: AuditContext,
    pub tenant: String,
    pub user: UserId,
    pub sid: SessionId,
    /// The session's CSRF token, for the page's forms.
    pub csrf: String,
}

/// A new session's CSRF token: 256 random bits.
pub fn new_csrf() -> Result<String, DomainError> {
    let mut bytes = [0u8; 32];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut bytes)
        .map_err(DomainError::internal)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The `Set-Cookie` value that keeps `csrf` and `token` in the browser.
pub fn set_cookie(csrf: &str, token: &str) -> String {
    format!("{COOKIE}={csrf}.{token}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// The `Set-Cookie` value that removes the session's cookie.
pub fn clear_cookie() -> &'static str {
    "__Host-tj_console=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"
}

/// The CSRF token and access token of the request's cookie.
fn presented(req: &HttpRequest) -> Option<(&str, &str)> {
    cookie(req, COOKIE)?
        .split_once('.')
        .filter(|(csrf, token)| !csrf.is_empty() && !token.is_empty())
}

/// Whether a request comes from one of our own pages: a browser's
/// `Sec-Fetch-Site: same-origin`, or (older browsers) an `Origin` naming the
/// host it was sent to. Neither: refused.
pub fn same_origin(req: &HttpRequest) -> bool {
    if let Some(site) = req.headers().get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .and_then(|o| o.split_once("://"))
        .map(|(_, authority)| authority);
    matches!((origin, host), (Some(origin), Some(host)) if origin.eq_ignore_ascii_case(host))
}

/// Where a request that has no usable session goes: the sign-in page (for
/// htmx, by `HX-Redirect`), with the dead cookie removed.
fn to_sign_in(req: &HttpRequest) -> HttpResponse {
    let mut response = if req.headers().contains_key("hx-request") {
        let mut r = HttpResponse::Ok();
        r.insert_header(("HX-Redirect", SIGN_IN));
        r
    } else {
        let mut r = HttpResponse::SeeOther();
        r.insert_header((header::LOCATION, SIGN_IN));
        r
    };
    if presented(req).is_some() {
        response.insert_header((header::SET_COOKIE, clear_cookie()));
    }
    response.finish()
}

/// The body a console form sent, read by `guard` (to find its CSRF token).
#[derive(Clone)]
pub struct FormBody(web::Bytes);

impl FormBody {
    /// Every value of the repeated field `name` (checkboxes), in order.
    pub fn values(&self, name: &str) -> Vec<String> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&self.0)
            .unwrap_or_default()
            .into_iter()
            .filter(|(field, _)| field == name)
            .map(|(_, value)| value)
            .collect()
    }
}

/// A console form's fields as a `T` (unknown fields, such as `_csrf`, ignored).
pub struct Form<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Form<T> {
    type Error = ConsoleError;
    type Future = std::future::Ready<Result<Self, ConsoleError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let parsed = match req.extensions().get::<FormBody>() {
            Some(FormBody(bytes)) => serde_urlencoded::from_bytes::<T>(bytes)
                .map(Form)
                .map_err(|e| ApiError::BadRequest(format!("form: {e}")).into()),
            None => Err(ApiError::BadRequest("form: no body".into()).into()),
        };
        std::future::ready(parsed)
    }
}

/// The value of `field` in a form body, if present.
pub fn form_field(body: &[u8], field: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(name, _)| name == field)
        .map(|(_, value)| value)
}

/// Compares two tokens in constant time.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Resumes the console session of every guarded request; see the module doc.
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(ApiError::Internal(Some("AppState missing".into())).into());
    };
    let Some(console) = state.console.clone() else {
        return Err(ApiError::NotFound("route").into());
    };
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD);
    if changes && !same_origin(req.request()) {
        tracing::info!(reason = "cross_site", "console request refused");
        return Err(ConsoleError::from(ApiError::Forbidden).into());
    }
    let Some((csrf, token)) = presented(req.request()).map(|(c, t)| (c.to_owned(), t.to_owned()))
    else {
        let response = to_sign_in(req.request());
        return Ok(req.into_response(response));
    };
    let ip = state.limits.client_ip(req.request());
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let client = Client::new(user_agent, Some(ip));
    // Boxed: the resumed session's future is deep (verify, renew, end).
    let resumed = match Box::pin(console.resume(&token, &client)).await {
        Ok(resumed) => resumed,
        Err(DomainError::InvalidToken(reason)) => {
            tracing::info!(reason = reason.as_str(), "console session refused");
            let response = to_sign_in(req.request());
            return Ok(req.into_response(response));
        }
        Err(e) => return Err(ConsoleError::from(ApiError::from(e)).into()),
    };
    if changes {
        let bytes = req.extract::<body::Bytes>().await?.0;
        let sent = match req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
            Some(header) => Some(header.to_owned()),
            None => form_field(&bytes, CSRF_FIELD),
        };
        if !sent.is_some_and(|sent| same_token(&sent, &csrf)) {
            tracing::info!(reason = "csrf_token", "console request refused");
            return Err(ConsoleError::from(ApiError::Forbidden).into());
        }
        req.extensions_mut().insert(FormBody(bytes));
    }
    let record = &resumed.verified.record;
    let admin = ConsoleAdmin {
        ctx: AuditContext {
            actor: Actor::Admin {
                user: record.user_id,
                tenant: record.tenant_id,
            },
            request_id: observe::request_id(req.request()),
        },
        tenant: record.tenant_slug.to_string(),
        user: record.user_id,
        sid: resumed.verified.claims.sid,
        csrf: csrf.clone(),
    };
    req.extensions_mut().insert(admin);
    let mut response = Box::pin(next.call(req)).await?.map_into_boxed_body();
    if let Some(renewed) = resumed.renewed {
        let value = set_cookie(&csrf, &renewed.access_token);
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn same_origin_takes_the_fetch_metadata_then_the_origin() {
        let req = |headers: &[(&str, &str)]| {
            let mut r = TestRequest::post().insert_header(("host", "console.example:8080"));
            for (name, value) in headers {
                r = r.insert_header((*name, *value));
            }
            r.to_http_request()
        };
        assert!(same_origin(&req(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&req(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&req(&[("sec-fetch-site", "same-site")])));
        assert!(!same_origin(&req(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://console.example:8080")
        ])));
        assert!(same_origin(&req(&[(
            "origin",
            "https://console.example:8080"
        )])));
        assert!(!same_origin(&req(&[("origin", "https://evil.example")])));
        assert!(!same_origin(&req(&[("origin", "null")])));
        assert!(!same_origin(&req(&[])));
    }

    #[test]
    fn the_cookie_holds_the_csrf_token_then_the_access_token() {
        let req = TestRequest::get()
            .insert_header(("cookie", "a=b; __Host-tj_console=csrf123.h.p.s"))
            .to_http_request();
        assert_eq!(presented(&req), Some(("csrf123", "h.p.s")));
        let empty = TestRequest::get()
            .insert_header(("cookie", "__Host-tj_console=.h.p.s"))
            .to_http_request();
        assert_eq!(presented(&empty), None);
        assert!(set_cookie("c", "t").contains("; Path=/; Secure; HttpOnly; SameSite=Strict"));
        assert!(!set_cookie("c", "t").contains("Domain"));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
        assert_eq!(
            form_field(b"a=1&_csrf=xyz", "_csrf").as_deref(),
            Some("xyz")
        );
    }
}
