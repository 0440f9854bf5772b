//! Request and response bodies: the extractors that read a body or a query
//! (`Json`, `Bytes`, `Query`), each only once the caller is accepted
//! (`gate`), whole, within a deadline and a size; the bodies the OAuth RFCs
//! send form-encoded; JSON answers that must not be cached.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::web::BytesMut;
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::gate::Gate;
use super::problem::ApiError;

/// Largest request body accepted, JSON or form.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// How long a request body may take to arrive (app data for the extractors).
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// Marks a request whose body was read to its end.
struct BodyRead;

/// Reads the request body once its caller is accepted: all of it within
/// `BodyTimeout` of starting (else 408) and at most `MAX_BODY_BYTES` (else
/// 413, without reading it when the head announces more).
async fn read(req: &HttpRequest, mut payload: Payload) -> Result<web::Bytes, ApiError> {
    Gate::passed(req).await;
    if !has_body(req.headers()) {
        return Ok(web::Bytes::new());
    }
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse::<usize>().ok());
    if announced.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge);
    }
    let timeout = req
        .app_data::<BodyTimeout>()
        .map_or(Duration::from_secs(5), |t| t.0);
    let whole = async {
        // The usual body arrives in one chunk: kept as it is, not copied.
        let mut first: Option<web::Bytes> = None;
        let mut rest = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("unreadable body: {e}")))?;
            let held = first.as_ref().map_or(0, web::Bytes::len) + rest.len();
            if held + chunk.len() > MAX_BODY_BYTES {
                return Err(ApiError::PayloadTooLarge);
            }
            match &first {
                None => first = Some(chunk),
                Some(head) => {
                    if rest.is_empty() {
                        rest.extend_from_slice(head);
                    }
                    rest.extend_from_slice(&chunk);
                }
            }
        }
        Ok(match first {
            Some(_) if !rest.is_empty() => rest.freeze(),
            Some(only) => only,
            None => web::Bytes::new(),
        })
    };
    let body = tokio::time::timeout(timeout, whole)
        .await
        .map_err(|_| ApiError::RequestTimeout)??;
    req.extensions_mut().insert(BodyRead);
    Ok(body)
}

/// The future of a body extractor: `parse` applied to the body once read.
fn reading<T: 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
    parse: impl FnOnce(&HttpRequest, web::Bytes) -> Result<T, ApiError> + 'static,
) -> LocalBoxFuture<'static, Result<T, ApiError>> {
    let (req, payload) = (req.clone(), payload.take());
    Box::pin(async move {
        let body = read(&req, payload).await?;
        parse(&req, body)
    })
}

/// The raw body, read as `read` says.
pub struct Bytes(pub web::Bytes);

impl FromRequest for Bytes {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        reading(req, payload, |_, body| Ok(Bytes(body)))
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// A JSON body (`application/json` or `…+json`), read as `read` says.
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        reading(req, payload, |req, body| {
            let json = req.mime_type().ok().flatten().is_some_and(|mime| {
                mime.subtype() == actix_web::mime::JSON
                    || mime.suffix() == Some(actix_web::mime::JSON)
            });
            if !json {
                return Err(ApiError::UnsupportedMediaType);
            }
            json_object(&body).map(Json)
        })
    }
}

/// The query string as a `T`, read once the caller is accepted.
pub struct Query<T>(pub T);

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            Gate::passed(&req).await;
            web::Query::<T>::from_query(req.query_string())
                .map(|query| Query(query.into_inner()))
                .map_err(|e| ApiError::BadRequest(e.to_string()))
        })
    }
}

/// A request whose body was not read to its end (its route reads none, or
/// reading it failed) cannot carry another: its connection is closed after
/// the answer, so a body that never finishes holds nothing for long.
pub async fn close_unread(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let announced = has_body(req.headers());
    let mut response = next.call(req).await?;
    if announced && !response.request().extensions().contains::<BodyRead>() {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    Ok(response)
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

/// An optional `min_version`: a non-negative whole number in JSON (`7` or
/// `7.0`, never `"7"`), its digits in a form.
pub(crate) fn some_version<'de, D: serde::Deserializer<'de>>(
    value: D,
) -> Result<Option<i64>, D::Error> {
    struct Version;
    impl serde::de::Visitor<'_> for Version {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a non-negative integer")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom("too large"))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            u64::try_from(v).map_err(|_| E::custom("must be a non-negative integer"))?;
            Ok(v)
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
            if v.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&v) {
                Ok(v as i64)
            } else {
                Err(E::custom("must be a non-negative integer"))
            }
        }
    }
    // JSON hands a number to the visitor as it is; a form parses its text.
    value.deserialize_i64(Version).map(Some)
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

/// A JSON body as a `T`. Every body the service reads is an object: serde
/// would also fill a struct from an array of its fields in order, which the
/// OpenAPI document does not allow, so anything but an object is refused.
pub(crate) fn json_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::BadRequest(
            "invalid JSON body: expected an object".to_owned(),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
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
        json_object(body)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(default)]
        a: u8,
    }

    #[test]
    fn a_json_body_is_an_object() {
        assert_eq!(json_object::<Body>(b" {\"a\": 1}").unwrap(), Body { a: 1 });
        assert_eq!(json_object::<Body>(b"{}").unwrap(), Body::default());
        for refused in [&b"[]"[..], b"[1]", b"null", b"1", b"\"a\"", b""] {
            let refused = json_object::<Body>(refused).unwrap_err();
            assert!(matches!(refused, ApiError::BadRequest(_)), "{refused:?}");
        }
    }
}
