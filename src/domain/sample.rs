//! A user's key record and a token it signed, built in memory with a fresh
//! master key and no store: what the verify benchmarks, property tests and
//! fuzz targets drive the I/O-free verify steps with. Not used by the service.

use std::sync::Arc;
use std::time::Duration;

use crate::config::TokenSettings;
use crate::domain::keys::secrets::{MasterKey, UserSecret};
use crate::domain::tokens::claims::Issuer;
use crate::domain::tokens::key_records::{KeyRecord, SealedGeneration};
use crate::domain::tokens::verify::TokenRules;
use crate::types::ids::{Generation, Role, SessionId, TenantId, TenantSlug, UserId, Username};

pub struct Signed {
    pub master_key: Arc<MasterKey>,
    pub record: KeyRecord,
    /// An access token of `record`'s user, signed with generation 1.
    pub token: String,
    pub rules: TokenRules,
}

pub fn settings() -> TokenSettings {
    TokenSettings {
        issuer: "tenant-jwt".into(),
        audience: "tenant-jwt".into(),
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(86_400),
        leeway: Duration::from_secs(5),
    }
}

/// Panics only if the OS random number generator fails.
pub fn signed() -> Signed {
    let master_key = Arc::new(
        MasterKey::from_base64(&MasterKey::generate_base64().expect("random key"))
            .expect("a generated key is valid"),
    );
    let (user, generation) = (UserId::generate(), Generation::from_db(1));
    let sealed = master_key
        .seal(
            user,
            generation,
            &UserSecret::generate().expect("random secret"),
        )
        .expect("sealing succeeds");
    let record = KeyRecord {
        version: 1,
        user_id: user,
        tenant_id: TenantId::generate(),
        tenant_slug: TenantSlug::parse("acme").expect("valid slug"),
        username: Username::parse("alice").expect("valid username"),
        role: Role::Member,
        disabled: false,
        generations: [SealedGeneration::new(generation, sealed, None)].into(),
        revoked_sessions: Vec::new(),
    };
    let token = Issuer::new(settings(), master_key.clone())
        .issue(&record, SessionId::generate())
        .expect("signing succeeds")
        .access_token;
    Signed {
        rules: TokenRules::new(&settings(), master_key.clone()),
        master_key,
        record,
        token,
    }
}
