//! Faults in the stores while the service runs.

use std::time::Duration;

use crate::helpers::{TcpProxy, spawn_app_with, test_settings};

const LOOKUPS: &str = "tenant_jwt_key_record_cache_lookups_total";

#[tokio::test]
async fn a_silent_redis_is_skipped_after_a_few_timeouts_and_asked_again_once_back() {
    let proxy = TcpProxy::to_redis().await;
    let mut settings = test_settings();
    settings.redis.url = proxy.redis_url();
    // Every verification asks Redis: no in-process level.
    settings.redis.local.capacity = 0;
    let app = spawn_app_with(settings).await;
    let alice = app.tenant_with_user("acme", "alice").await;
    let lookups = |result: &'static str| {
        let app = &app;
        async move {
            app.counter(&format!("{LOOKUPS}{{result=\"{result}\"}}"))
                .await
                .unwrap_or(0.0)
        }
    };

    // Redis keeps its connections open but answers nothing.
    proxy.freeze();
    for _ in 0..6 {
        assert_eq!(app.me(&alice.token).await.status(), 200, "Postgres answers");
    }
    assert!(
        lookups("circuit_open").await >= 1.0,
        "after a few timeouts Redis is not asked at all"
    );

    proxy.restore();
    let hits_before = lookups("hit").await;
    let mut asked_again = false;
    for _ in 0..50 {
        assert_eq!(app.me(&alice.token).await.status(), 200);
        if lookups("hit").await > hits_before {
            asked_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(asked_again, "Redis is used again after the cool-down");
}
