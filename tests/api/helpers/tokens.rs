//! Tokens made outside the service: the claims it issues, and JWS signed
//! with any key and header, to attack it with.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tenant_jwt::types::ids::UserId;
use uuid::Uuid;

use super::{AUDIENCE, ISSUER, unix_now};

/// The claims the service issues, for `user` in `tenant`, valid now.
pub fn claims_for(user: UserId, tenant: &str) -> Value {
    let now = unix_now() as i64;
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": user.to_string(), "tid": tenant,
        "role": "member", "iat": now, "nbf": now, "exp": now + 600, "jti": Uuid::new_v4().to_string(),
        "sid": Uuid::new_v4().to_string(),
    })
}

pub fn b64(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
}

/// A compact JWS with an arbitrary header and claims, signed with `secret`
/// using `algorithm` whatever the header says.
pub fn forge(header: &Value, claims: &Value, secret: &[u8], algorithm: Algorithm) -> String {
    let signing_input = format!("{}.{}", b64(header), b64(claims));
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(secret),
        algorithm,
    )
    .unwrap();
    format!("{signing_input}.{signature}")
}

/// An HS256 token exactly like the service's, for `claims`, signed with `secret`.
pub fn sign(claims: &Value, secret: &[u8], kid: &str) -> String {
    forge(
        &json!({ "typ": "JWT", "alg": "HS256", "kid": kid }),
        claims,
        secret,
        Algorithm::HS256,
    )
}
