//! Route handlers, one module per resource.

pub mod audit;
pub mod health;
pub mod introspect;
pub mod me;
pub mod sessions;
pub mod tenants;
pub mod users;

use actix_web::HttpRequest;
use actix_web::http::header;
use serde::de::DeserializeOwned;

use super::problem::{ApiError, json_error};

/// Parses a body sent form-encoded (as OAuth RFCs 7009 and 7662 say) or as JSON.
pub(crate) fn form_or_json<T: DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    parse_form_or_json(content_type, body)
}

fn parse_form_or_json<T: DeserializeOwned>(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<T, ApiError> {
    let content_type = content_type
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match content_type.as_deref() {
        Some("application/x-www-form-urlencoded") => super::form::from_bytes(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid form body: {e}"))),
        Some("application/json") => serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}"))),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

/// Every request body the service reads, parsed and validated from raw
/// bytes exactly as its handler does, with no store behind: what the fuzz
/// target and the property tests drive. `kind` picks the body (any value is
/// fine); the answer is whether the body would be accepted.
#[doc(hidden)]
pub fn parse_body(kind: u8, content_type: &str, body: &[u8]) -> Result<(), ApiError> {
    fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
        serde_json::from_slice(body)
            .map_err(|e| json_error(actix_web::error::JsonPayloadError::Deserialize(e)))
    }
    let content_type = Some(content_type);
    match kind % 8 {
        0 => json::<sessions::LoginRequest>(body).map(drop),
        1 => json::<sessions::RefreshRequest>(body).map(drop),
        2 => parse_form_or_json::<sessions::RevokeRequest>(content_type, body).map(drop),
        3 => parse_form_or_json::<introspect::IntrospectRequest>(content_type, body).map(drop),
        4 => json::<tenants::CreateTenant>(body)?.validated().map(drop),
        5 => json::<users::CreateUser>(body)?.validated().map(drop),
        6 => json::<users::PatchUser>(body)?.validated().map(drop),
        _ => users::RotateRequest::parse(body).map(drop),
    }
}
