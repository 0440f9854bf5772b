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

use super::problem::ApiError;

/// Parses a body sent form-encoded (as OAuth RFCs 7009 and 7662 say) or as JSON.
pub(crate) fn form_or_json<T: DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match content_type.as_deref() {
        Some("application/x-www-form-urlencoded") => serde_urlencoded::from_bytes(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid form body: {e}"))),
        Some("application/json") => serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}"))),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}
