//! Request and response bodies: every body read whole, within a deadline
//! and a size, before any handler runs (`read_body`); the bodies the OAuth
//! RFCs send form-encoded; JSON answers that must not be cached.

use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::web::BytesMut;
use actix_web::{Error, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// Largest request body accepted, JSON or form.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// How long a request body may take to arrive (app data for `read_body`).
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// Reads the request body, if it has one, before the rest of the app sees
/// the request: all of it within `BodyTimeout` of the head (else 408, and the
/// connection is closed, so a client that never finishes a body holds
/// nothing for long) and at most `MAX_BODY_BYTES` (else 413). Handlers then
/// read it from memory.
pub async fn read_body(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if !has_body(req.headers()) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let timeout = req
        .app_data::<BodyTimeout>()
        .map_or(Duration::from_secs(5), |t| t.0);
    let mut payload = req.take_payload();
    let read = async {
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("unreadable body: {e}")))?;
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(ApiError::PayloadTooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    let refused = match tokio::time::timeout(timeout, read).await {
        Ok(Ok(body)) => {
            req.set_payload(Payload::from(body));
            return next
                .call(req)
                .await
                .map(ServiceResponse::map_into_left_body);
        }
        Ok(Err(refused)) => refused,
        Err(_) => ApiError::RequestTimeout,
    };
    // The rest of the body is never read: the connection cannot carry
    // another request, so it is closed after this answer.
    let mut response = refused.error_response();
    response
        .head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    Ok(req.into_response(response).map_into_right_body())
}

/// Whether the head announces a body: a non-zero length, or chunks.
fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|length| length.as_bytes() != b"0")
}

/// A non-negative integer as JSON Schema counts one: `60` or `60.0`.
pub(crate) fn whole_number<'de, D: serde::Deserializer<'de>>(value: D) -> Result<u64, D::Error> {
    let number = serde_json::Number::deserialize(value)?;
    if let Some(whole) = number.as_u64() {
        return Ok(whole);
    }
    match number.as_f64() {
        // Exact below 2^53; larger values are refused as out of range anyway.
        Some(float) if float.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&float) => {
            Ok(float as u64)
        }
        _ => Err(serde::de::Error::custom("must be a non-negative integer")),
    }
}

/// An optional member that, when present, is a whole number (never `null`).
pub(crate) fn some_whole_number<'de, D: serde::Deserializer<'de>>(
    value: D,
) -> Result<Option<u64>, D::Error> {
    whole_number(value).map(Some)
}

/// For an optional body field that may be left out but not sent as `null`
/// (`#[serde(default, deserialize_with = "non_null")]`): what the OpenAPI
/// document says, a field that is absent or of its type.
pub(crate) fn non_null<'de, D, T>(value: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(value).map(Some)
}

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
    let essence = content_type
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    let is = |media_type: &str| essence.eq_ignore_ascii_case(media_type);
    if is("application/x-www-form-urlencoded") {
        super::form::from_bytes(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid form body: {e}")))
    } else if is("application/json") {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// 200 with a JSON body that must not be cached (RFC 6749 §5.1). Written
/// into one buffer sized for the usual answer (`/v1/me`, introspection)
/// rather than grown from empty; header values static (no copy, no check).
pub(crate) fn no_store_json(body: impl serde::Serialize) -> HttpResponse {
    let mut json = Vec::with_capacity(384);
    if let Err(e) = serde_json::to_writer(&mut json, &body) {
        return HttpResponse::from_error(ApiError::Internal(Some(
            format!("serialising an answer: {e}").into(),
        )));
    }
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        ))
        .insert_header((header::PRAGMA, header::HeaderValue::from_static("no-cache")))
        .content_type(header::HeaderValue::from_static("application/json"))
        .body(json)
}
