//! Master key rotation, online: add the new key first, rewrap while tokens
//! are checked, remove the old key.

use std::sync::atomic::{AtomicBool, Ordering};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use tenant_jwt::config::{MasterKeySource, Settings};
use tenant_jwt::domain::keys::rewrap;
use tenant_jwt::domain::keys::secrets::{KeyId, MasterKey};
use tenant_jwt::startup::Application;
use zeroize::Zeroizing;

use crate::helpers::{PASSWORD, TestApp, spawn_app_with, test_settings};

fn with_keys(settings: &Settings, list: &str) -> Settings {
    let mut settings = settings.clone();
    settings.master_key = MasterKeySource::Inline(Zeroizing::new(list.to_owned()));
    settings
}

/// The key each of `user`'s stored secrets names.
async fn sealed_under(app: &TestApp, user: tenant_jwt::types::ids::UserId) -> Vec<Option<KeyId>> {
    use tenant_jwt::db::schema::user_secrets;
    let mut conn = app.db().await;
    let sealed: Vec<Vec<u8>> = user_secrets::table
        .filter(user_secrets::user_id.eq(user))
        .select(user_secrets::ciphertext)
        .load(&mut conn)
        .await
        .unwrap();
    sealed.iter().map(|s| KeyId::of(s)).collect()
}

#[tokio::test]
async fn keys_rotate_online_from_k1_to_k2() {
    let (k1, k2) = (
        MasterKey::generate_base64().unwrap(),
        MasterKey::generate_base64().unwrap(),
    );
    let id = |k: &str| MasterKey::from_base64(k).unwrap().sealing_id();
    let base = test_settings();

    // K1: users and tokens, their records cached in Redis.
    let app = spawn_app_with(with_keys(&base, &k1)).await;
    let first = app.tenant_with_user("acme", "alice").await;
    let mut members = vec![first.clone()];
    for name in ["bob", "carol"] {
        let user = app.create_user("acme", name, "member").await;
        members.push(crate::helpers::Member {
            id: tenant_jwt::types::ids::UserId::parse(user["id"].as_str().unwrap()).unwrap(),
            token: app.token("acme", name).await,
            ..first.clone()
        });
    }
    for m in &members {
        assert_eq!(app.me(&m.token).await.status(), 200);
    }
    app.stop().await;

    // K2 first, K1 still listed: old tokens verify, logins work, new secrets
    // are sealed under K2.
    let both = with_keys(&base, &format!("{},{}", *k2, *k1));
    let app = spawn_app_with(both.clone()).await;
    for m in &members {
        assert_eq!(app.me(&m.token).await.status(), 200);
    }
    assert_eq!(app.login("acme", "alice", PASSWORD).await.status(), 200);
    let dave = app.create_user("acme", "dave", "member").await;
    let dave = tenant_jwt::types::ids::UserId::parse(dave["id"].as_str().unwrap()).unwrap();
    assert_eq!(sealed_under(&app, dave).await, [Some(id(&k2))]);
    assert_eq!(sealed_under(&app, members[1].id).await, [Some(id(&k1))]);

    // Rewrap while tokens are checked in a loop, in pages of two (each its
    // own transaction, the next resuming after the last): not one check fails.
    let db = tenant_jwt::db::prepare_pool(&both.database).await.unwrap();
    let key_list = MasterKey::from_base64(&format!("{},{}", *k2, *k1)).unwrap();
    let done = AtomicBool::new(false);
    let checks = async {
        let (mut ok, mut failed) = (0, 0);
        while !AtomicBool::load(&done, Ordering::SeqCst) {
            for m in &members {
                match app.me(&m.token).await.status().as_u16() {
                    200 => ok += 1,
                    _ => failed += 1,
                }
            }
        }
        (ok, failed)
    };
    let mut progress = Vec::new();
    let rewrap = async {
        let rewrapped = rewrap::rewrap_in_pages(&db, &key_list, 2, |done, total| {
            progress.push((done, total))
        })
        .await
        .unwrap();
        done.store(true, Ordering::SeqCst);
        rewrapped
    };
    let ((ok, failed), rewrapped) = tokio::join!(checks, rewrap);
    assert_eq!(
        progress,
        [(0, 3), (2, 3), (3, 3)],
        "a progress line after each page"
    );
    assert_eq!(failed, 0, "{failed} failed checks of {}", ok + failed);
    assert_eq!(rewrapped.secrets, 3, "alice, bob and carol were under K1");
    assert!(rewrapped.check_value);
    let status = rewrap::status(&db, &key_list).await.unwrap();
    assert_eq!(status.listed, [(id(&k2), 4), (id(&k1), 0)]);
    assert_eq!(status.no_longer_needed(), [id(&k1)]);
    let again = rewrap::rewrap(&db, &key_list, |_, _| {}).await.unwrap();
    assert_eq!(again.secrets, 0, "nothing left: resumable, idempotent");
    let cached_before = app.redis_keys().await;
    app.stop().await;

    // K2 alone, with Redis still holding records cached under K1.
    assert!(
        cached_before.iter().any(|k| k.ends_with(":record")),
        "records cached under K1 stay in Redis"
    );
    let app = spawn_app_with(with_keys(&base, &k2)).await;
    for m in &members {
        assert_eq!(app.me(&m.token).await.status(), 200, "token of {}", m.id);
    }
    assert_eq!(app.login("acme", "bob", PASSWORD).await.status(), 200);
    app.stop().await;

    // K1 alone: refused, naming the key that is missing.
    let error = match Application::build(with_keys(&base, &k1)).await {
        Ok(_) => panic!("started with a key that opens nothing stored"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains(&id(&k2).to_string()), "{error}");
    assert!(
        !error.contains(k1.as_str()) && !error.contains(k2.as_str()),
        "{error}"
    );
}
