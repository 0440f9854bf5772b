//! Access tokens: the claims they carry and how they are signed. Each token is
//! HS256 under its user's current secret, with that secret's generation in
//! the `kid` header. Verification is in `verify.rs`.

use std::sync::Arc;

use chrono::Utc;
use compact_str::CompactString;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::config::TokenSettings;
use crate::domain::error::DomainError;
use crate::domain::keys::secrets::MasterKey;
use crate::domain::tokens::key_records::KeyRecord;
use crate::types::ids::{Role, SessionId, TenantId, TokenId, UserId};

/// `iss` and `aud` are short: held inline, a verified token's claims are
/// copied without allocating (`tokens::recent` hands out copies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: CompactString,
    pub aud: CompactString,
    pub sub: UserId,
    pub tid: TenantId,
    pub role: Role,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: TokenId,
    pub sid: SessionId,
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
    pub claims: Claims,
}

#[derive(Clone)]
pub struct Issuer {
    master_key: Arc<MasterKey>,
    settings: TokenSettings,
}

impl Issuer {
    pub fn new(settings: TokenSettings, master_key: Arc<MasterKey>) -> Self {
        Self {
            master_key,
            settings,
        }
    }

    /// Signs a new access token for the record's user with their current
    /// secret, as part of session `sid`.
    pub fn issue(&self, record: &KeyRecord, sid: SessionId) -> Result<IssuedToken, DomainError> {
        let current = record.current().ok_or_else(|| {
            DomainError::internal(format!("user {} has no current secret", record.user_id))
        })?;
        let secret = current.open(&self.master_key, record.user_id)?;
        let now = Utc::now().timestamp();
        let ttl = self.settings.access_ttl.as_secs();
        let claims = Claims {
            iss: self.settings.issuer.as_str().into(),
            aud: self.settings.audience.as_str().into(),
            sub: record.user_id,
            tid: record.tenant_id,
            role: record.role,
            iat: now,
            nbf: now,
            exp: now + i64::try_from(ttl).unwrap_or(i64::MAX / 2),
            jti: TokenId::generate(),
            sid,
        };
        let header = Header {
            kid: Some(current.generation.to_string()),
            ..Header::new(Algorithm::HS256)
        };
        let access_token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret.expose()))
                .map_err(DomainError::internal)?;
        Ok(IssuedToken {
            access_token,
            expires_in: ttl,
            claims,
        })
    }
}
