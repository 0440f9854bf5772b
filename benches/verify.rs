//! Micro-benchmarks of the verify path without I/O: reading the unverified
//! header and subject, opening the sealed secret, checking signature and
//! claims, and an in-process cache hit. `cargo bench --features fuzzing --bench verify`

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use tenant_jwt::cache::local::LocalCache;
use tenant_jwt::domain::sample;
use tenant_jwt::domain::tokens::key_records::KeyRecord;
use tenant_jwt::domain::tokens::verify::Unverified;
use tenant_jwt::types::ids::UserId;

fn verify_path(c: &mut Criterion) {
    let sample::Signed {
        master_key,
        record,
        token,
        rules,
    } = sample::signed();
    let (user, generation) = (record.user_id, record.generations[0].generation);
    let sealed = record.generations[0].sealed.clone();
    let record = Arc::new(record);
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
