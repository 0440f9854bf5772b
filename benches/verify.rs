//! Micro-benchmarks of the verify path without I/O: reading the unverified
//! header and subject, opening the sealed secret, checking signature and
//! claims, and an in-process cache hit. `cargo bench --bench verify`

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use tenant_jwt::cache::local::LocalCache;
use tenant_jwt::config::TokenSettings;
use tenant_jwt::domain::ids::{
    Generation, Role, SessionId, TenantId, TenantSlug, UserId, Username,
};
use tenant_jwt::domain::key_records::{KeyRecord, SealedGeneration};
use tenant_jwt::domain::secrets::{MasterKey, UserSecret};
use tenant_jwt::domain::tokens::Issuer;
use tenant_jwt::domain::verify::{TokenRules, Unverified};

fn settings() -> TokenSettings {
    TokenSettings {
        issuer: "tenant-jwt".into(),
        audience: "tenant-jwt".into(),
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(86_400),
        leeway: Duration::from_secs(5),
    }
}

fn verify_path(c: &mut Criterion) {
    let master_key =
        Arc::new(MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap());
    let (user, generation) = (UserId::generate(), Generation::from_db(1));
    let sealed = master_key
        .seal(user, generation, &UserSecret::generate().unwrap())
        .unwrap();
    let record = Arc::new(KeyRecord {
        version: 1,
        user_id: user,
        tenant_id: TenantId::generate(),
        tenant_slug: TenantSlug::parse("acme").unwrap(),
        username: Username::parse("alice").unwrap(),
        role: Role::Member,
        disabled: false,
        generations: vec![SealedGeneration::new(generation, sealed.clone(), None)],
        revoked_sessions: vec![SessionId::generate(); 3],
    });
    let token = Issuer::new(settings(), master_key.clone())
        .issue(&record, SessionId::generate())
        .unwrap()
        .access_token;
    let rules = TokenRules::new(&settings(), master_key.clone());
    let local: LocalCache<Option<Arc<KeyRecord>>> =
        LocalCache::new(100_000, Duration::from_secs(60));
    local.set_live(true);
    for _ in 0..10_000 {
        let ticket = local.ticket().unwrap();
        local.insert(ticket, UserId::generate(), None);
    }
    let ticket = local.ticket().unwrap();
    local.insert(ticket, user, Some(record.clone()));

    c.bench_function("read unverified header and sub", |b| {
        b.iter(|| Unverified::read(std::hint::black_box(&token)).unwrap())
    });
    c.bench_function("unseal the user's secret", |b| {
        b.iter(|| {
            master_key
                .unseal(user, generation, std::hint::black_box(&sealed))
                .unwrap()
        })
    });
    c.bench_function("check signature and claims", |b| {
        b.iter(|| {
            rules
                .check(
                    std::hint::black_box(&token),
                    generation,
                    &record,
                    Utc::now(),
                )
                .unwrap()
        })
    });
    c.bench_function("in-process cache hit", |b| {
        b.iter(|| local.get(std::hint::black_box(user)).unwrap())
    });
    c.bench_function("whole verify path, in-process hit", |b| {
        b.iter(|| {
            let token = std::hint::black_box(&token);
            let unverified = Unverified::read(token).unwrap();
            let record = local.get(unverified.user_id).unwrap().unwrap();
            rules
                .check(token, unverified.generation, &record, Utc::now())
                .unwrap()
        })
    });
}

criterion_group!(benches, verify_path);
criterion_main!(benches);
