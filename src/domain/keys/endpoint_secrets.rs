//! Webhook endpoints' signing secrets sealed under the master key, as user
//! secrets are (XChaCha20-Poly1305, the key id first), with the endpoint id
//! as associated data: a sealed secret copied onto another endpoint does not
//! open. Here, beside the keys, so `keys rewrap` re-seals them too.

use zeroize::Zeroizing;

use super::secrets::{MasterKey, SecretError};
use crate::types::ids::WebhookId;

pub const LEN: usize = 32;
const AAD: &[u8] = b"tenant-jwt/webhook-secret/v1";

fn aad(id: WebhookId) -> [u8; AAD.len() + 16] {
    let mut aad = [0u8; AAD.len() + 16];
    aad[..AAD.len()].copy_from_slice(AAD);
    aad[AAD.len()..].copy_from_slice(id.as_uuid().as_bytes());
    aad
}

/// `secret` sealed for endpoint `id` under the sealing key.
pub fn seal(key: &MasterKey, id: WebhookId, secret: &[u8; LEN]) -> Result<Vec<u8>, SecretError> {
    key.seal_with_aad(&aad(id), secret)
}

/// Opens a sealed secret of endpoint `id` under the key its header names.
pub fn open(
    key: &MasterKey,
    id: WebhookId,
    sealed: &[u8],
) -> Result<Zeroizing<[u8; LEN]>, SecretError> {
    let plain = key.open_with_aad(&aad(id), sealed)?;
    let bytes: [u8; LEN] = plain
        .as_slice()
        .try_into()
        .map_err(|_| SecretError::Unseal)?;
    Ok(Zeroizing::new(bytes))
}

/// The same secret sealed again under the sealing key.
pub fn reseal(key: &MasterKey, id: WebhookId, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
    seal(key, id, &*open(key, id, sealed)?)
}
