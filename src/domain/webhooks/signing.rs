//! Standard Webhooks signing (standardwebhooks.com): each endpoint's secret
//! is 32 random bytes, shown once as `whsec_` + standard base64, kept sealed
//! under the master key (the endpoint id as associated data). A message is
//! signed as `v1,` + base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`;
//! during a rotation under both secrets, space-separated.

use std::fmt;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::TryRngCore;
use rand::rngs::OsRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::domain::keys::endpoint_secrets::{self, LEN};
use crate::domain::keys::secrets::{MasterKey, SecretError};
use crate::types::ids::WebhookId;

const PREFIX: &str = "whsec_";

/// An endpoint's signing secret, in the clear. Never printed, zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct WebhookSecret([u8; LEN]);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    pub fn generate() -> Result<Self, SecretError> {
        let mut bytes = [0u8; LEN];
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| SecretError::Rng(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// `whsec_` + standard base64: what the endpoint's owner configures.
    pub fn to_wire(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{PREFIX}{}", STANDARD.encode(self.0)))
    }

    /// Sealed for endpoint `id` under the master key's sealing key.
    pub fn seal(&self, key: &MasterKey, id: WebhookId) -> Result<Vec<u8>, SecretError> {
        endpoint_secrets::seal(key, id, &self.0)
    }

    pub fn unseal(key: &MasterKey, id: WebhookId, sealed: &[u8]) -> Result<Self, SecretError> {
        Ok(Self(*endpoint_secrets::open(key, id, sealed)?))
    }

    /// One `v1,<base64>` signature of a message.
    pub fn sign(&self, message_id: &str, timestamp: i64, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(message_id.as_bytes());
        ctx.update(b".");
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        format!("v1,{}", STANDARD.encode(ctx.sign().as_ref()))
    }
}

/// The `webhook-signature` header: one signature per secret, space-separated.
pub fn signature_header(
    secrets: &[WebhookSecret],
    message_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| s.sign(message_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_wire(wire: &str) -> WebhookSecret {
        let bytes = STANDARD.decode(wire.strip_prefix(PREFIX).unwrap()).unwrap();
        // The specification's vector has a 24-byte secret; ours are 32.
        let mut padded = [0u8; LEN];
        padded[..bytes.len()].copy_from_slice(&bytes);
        assert_eq!(bytes.len(), 24);
        WebhookSecret(padded)
    }

    #[test]
    fn the_specifications_test_vector() {
        // HMAC pads a short key with zeros to the block size, so the
        // 24-byte key padded to 32 signs alike.
        let secret = from_wire("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_whsec_base64_of_32_bytes_and_never_printed() {
        let secret = WebhookSecret::generate().unwrap();
        let wire = secret.to_wire();
        assert!(wire.starts_with("whsec_"));
        assert_eq!(STANDARD.decode(&wire[6..]).unwrap().len(), 32);
        assert!(!format!("{secret:?}").contains(&wire[6..]));
    }

    #[test]
    fn sealed_secrets_open_only_for_their_endpoint() {
        let key = MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
        let (a, b) = (WebhookId::generate(), WebhookId::generate());
        let secret = WebhookSecret::generate().unwrap();
        let sealed = secret.seal(&key, a).unwrap();
        let opened = WebhookSecret::unseal(&key, a, &sealed).unwrap();
        assert_eq!(opened.0, secret.0);
        assert!(WebhookSecret::unseal(&key, b, &sealed).is_err());
    }

    #[test]
    fn a_rotation_signs_under_both() {
        let (old, new) = (
            WebhookSecret::generate().unwrap(),
            WebhookSecret::generate().unwrap(),
        );
        let header = signature_header(&[new.clone(), old.clone()], "msg_1", 7, b"{}");
        let parts: Vec<_> = header.split(' ').collect();
        assert_eq!(
            parts,
            [new.sign("msg_1", 7, b"{}"), old.sign("msg_1", 7, b"{}")]
        );
    }
}
