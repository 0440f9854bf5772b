//! Request and response bodies beyond actix's JSON extractor: the bodies
//! the OAuth RFCs send form-encoded, and JSON answers that must not be cached.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// Largest request body accepted, JSON or form.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

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

/// `form_or_json` given the `Content-Type` value.
pub(crate) fn parse_form_or_json<T: DeserializeOwned>(
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

/// 200 with a JSON body that must not be cached (RFC 6749 §5.1).
pub(crate) fn no_store_json(body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}
