//! Endpoint secrets follow a master key rotation: counted by `keys status`,
//! re-sealed by `keys rewrap`, and still signing once the old key is gone.

use std::time::Duration;

use reqwest::Method;
use tenant_jwt::config::MasterKeySource;
use tenant_jwt::domain::keys::rewrap;
use tenant_jwt::domain::keys::secrets::MasterKey;
use zeroize::Zeroizing;

use super::receiver::Receiver;
use super::{add_endpoint, call, create_role, verifies};
use crate::helpers::{spawn_app_with, test_settings};

#[tokio::test]
async fn endpoint_secrets_are_rewrapped_and_sign_under_the_new_key_alone() {
    let (k1, k2) = (
        MasterKey::generate_base64().unwrap(),
        MasterKey::generate_base64().unwrap(),
    );
    let id = |k: &str| MasterKey::from_base64(k).unwrap().sealing_id();
    let base = test_settings();
    let with = |list: String| {
        let mut settings = base.clone();
        settings.master_key = MasterKeySource::Inline(Zeroizing::new(list));
        settings
    };
    let receiver = Receiver::start(200);

    let app = spawn_app_with(with(k1.to_string())).await;
    app.create_tenant("acme").await;
    let (endpoint, old) = add_endpoint(&app, "acme", &receiver.url, &["role.created"]).await;
    let rotate = format!("/v1/tenants/acme/webhooks/{endpoint}/rotate-secret");
    let (status, rotated) = call(&app, Method::POST, &rotate, None).await;
    assert_eq!(status, 200);
    let new = rotated["secret"].as_str().unwrap().to_owned();
    app.stop().await;

    let both = with(format!("{},{}", *k2, *k1));
    let db = tenant_jwt::db::prepare_pool(&both.database).await.unwrap();
    let keys = MasterKey::from_base64(&format!("{},{}", *k2, *k1)).unwrap();
    let status = rewrap::status(&db, &keys).await.unwrap();
    assert_eq!(
        status.listed,
        [(id(&k2), 0), (id(&k1), 2)],
        "both secrets counted"
    );
    let rewrapped = rewrap::rewrap(&db, &keys, |_, _| {}).await.unwrap();
    assert_eq!(rewrapped.secrets, 2, "the current and the previous secret");
    let status = rewrap::status(&db, &keys).await.unwrap();
    assert_eq!(status.listed, [(id(&k2), 2), (id(&k1), 0)]);

    let app = spawn_app_with(with(k2.to_string())).await;
    create_role(&app, "acme", "auditor").await;
    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1, "delivered under K2 alone");
    assert!(verifies(&new, &received[0]) && verifies(&old, &received[0]));
    app.stop().await;
}
