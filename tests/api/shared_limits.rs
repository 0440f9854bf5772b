//! The login and invalid-bearer limits are one budget for every instance
//! sharing Redis; with Redis cut they hold per instance, never vanish.

use std::ops::RangeInclusive;

use serde_json::json;
use tenant_jwt::config::Settings;

use crate::helpers::{
    PASSWORD, TcpProxy, TestApp, claims_for, sign, spawn_app_with, test_settings,
};

/// Two instances sharing Postgres and Redis (through `redis_url` if given),
/// each with its own limiters, and tenant `acme` with user `alice`.
async fn two_instances(
    redis_url: Option<String>,
    configure: impl FnOnce(&mut Settings),
) -> (TestApp, TestApp) {
    let mut settings = test_settings();
    settings.limits.login_per_ip = 10_000;
    settings.limits.login_per_account_ip = 10_000;
    settings.limits.login_per_account = 10_000;
    settings.limits.failed_verifications_per_ip = 10_000;
    if let Some(url) = redis_url {
        settings.redis.url = url;
    }
    configure(&mut settings);
    let a = spawn_app_with(settings.clone()).await;
    let b = spawn_app_with(settings).await;
    a.create_tenant("acme").await;
    a.create_user("acme", "alice", "member").await;
    (a, b)
}

/// `attempts` wrong-password logins, alternating between `a` and `b`, as
/// `username(i)` from `address(i)` (an `X-Forwarded-For`, or none); how many
/// were checked (401) and how many refused (429). Nothing else is answered.
async fn logins(
    [a, b]: [&TestApp; 2],
    attempts: usize,
    username: impl Fn(usize) -> String,
    address: impl Fn(usize) -> Option<String>,
) -> (usize, usize) {
    let (mut checked, mut refused) = (0, 0);
    for i in 0..attempts {
        let app = if i % 2 == 0 { a } else { b };
        let mut request = app
            .client
            .post(app.url("/v1/tenants/acme/login"))
            .json(&json!({ "username": username(i), "password": "wrong-password-1" }));
        if let Some(address) = address(i) {
            request = request.header("X-Forwarded-For", address);
        }
        let response = request.send().await.unwrap();
        match response.status().as_u16() {
            401 => checked += 1,
            429 => {
                let wait: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=60).contains(&wait), "Retry-After {wait}");
                refused += 1;
            }
            other => panic!("login answered {other}"),
        }
    }
    (checked, refused)
}

/// One budget of 10, plus at most 2 for what each instance lets through
/// before it learns the budget is spent.
const ONE_BUDGET: RangeInclusive<usize> = 10..=12;

#[tokio::test]
async fn one_account_and_address_has_one_budget_across_instances() {
    let (a, b) = two_instances(None, |s| s.limits.login_per_account_ip = 10).await;
    let (checked, refused) = logins([&a, &b], 30, |_| "alice".into(), |_| None).await;
    assert!(
        ONE_BUDGET.contains(&checked),
        "{checked} checked, {refused} refused"
    );
    // The right password from the same address is refused too, on both.
    for app in [&a, &b] {
        assert_eq!(app.login("acme", "alice", PASSWORD).await.status(), 429);
    }
}

#[tokio::test]
async fn one_address_has_one_budget_across_accounts_and_instances() {
    let (a, b) = two_instances(None, |s| s.limits.login_per_ip = 10).await;
    let (checked, refused) = logins([&a, &b], 30, |i| format!("user{i}"), |_| None).await;
    assert!(
        ONE_BUDGET.contains(&checked),
        "{checked} checked, {refused} refused"
    );
}

#[tokio::test]
async fn one_account_has_one_budget_across_addresses_and_instances() {
    let (a, b) = two_instances(None, |s| {
        s.limits.login_per_account = 10;
        s.limits.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let from = |i: usize| Some(format!("198.51.100.{}", i + 1));
    let (checked, refused) = logins([&a, &b], 30, |_| "alice".into(), from).await;
    assert!(
        ONE_BUDGET.contains(&checked),
        "{checked} checked, {refused} refused"
    );
}

#[tokio::test]
async fn invalid_bearer_tokens_have_one_budget_across_instances() {
    let (a, b) = two_instances(None, |s| s.limits.failed_verifications_per_ip = 10).await;
    let token = a.token("acme", "alice").await;
    let tenant_id = a
        .me(&token)
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["tenant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut checked, mut refused) = (0, 0);
    for i in 0..30 {
        let app = if i % 2 == 0 { &a } else { &b };
        let stranger = tenant_jwt::types::ids::UserId::generate();
        let forged = sign(&claims_for(stranger, &tenant_id), &[7u8; 32], "1");
        match app.me(&forged).await.status().as_u16() {
            401 => checked += 1,
            429 => refused += 1,
            other => panic!("answered {other}"),
        }
    }
    assert!(
        ONE_BUDGET.contains(&checked),
        "{checked} checked, {refused} refused"
    );
}

#[tokio::test]
async fn with_redis_cut_limits_hold_per_instance_and_the_shared_budget_resumes() {
    let proxy = TcpProxy::to_redis().await;
    let (a, b) = two_instances(Some(proxy.redis_url()), |s| {
        s.limits.login_per_account_ip = 10;
    })
    .await;
    a.create_user("acme", "bob", "member").await;

    proxy.cut();
    let started = std::time::Instant::now();
    let (checked, refused) = logins([&a, &b], 30, |_| "alice".into(), |_| None).await;
    // Each instance's own 10, plus one more for every 6 s the run took (the
    // allowance refills by one each sixth of a minute; hashes are slow on a
    // loaded machine). More than one budget's worth: the limits are local.
    let refills = 2 * (started.elapsed().as_secs() / 6 + 1);
    assert!(
        checked > 12 && checked <= 20 + refills as usize,
        "each instance's own limit of 10, no more: {checked} checked, {refused} refused"
    );
    for app in [&a, &b] {
        let degraded = app.metric("tenant_jwt_rate_limit_degraded_total").await;
        assert!(degraded > 0.0, "degradation counted");
    }

    proxy.restore();
    for app in [&a, &b] {
        crate::helpers::redis_servers::eventually(
            std::time::Duration::from_secs(10),
            "Redis answers again",
            || async { app.readyz().await == 200 },
        )
        .await;
    }
    let (checked, refused) = logins([&a, &b], 30, |_| "bob".into(), |_| None).await;
    assert!(
        ONE_BUDGET.contains(&checked),
        "{checked} checked, {refused} refused"
    );
}

#[tokio::test]
async fn a_budget_gives_its_burst_then_one_cell_per_interval() {
    use std::time::Duration;
    use tenant_jwt::cache::RecordCache;
    use tenant_jwt::cache::budgets::{Budget, Budgets, Taken};

    let settings = test_settings();
    let budgets = Budgets::new(RecordCache::new(&settings.redis).unwrap());
    let budget = Budget {
        subject: "ip:192.0.2.1".into(),
        name: "test".into(),
        per_minute: 3,
    };
    assert_eq!(budgets.take(&budget).await.unwrap(), Taken::WithMoreLeft);
    assert_eq!(budgets.take(&budget).await.unwrap(), Taken::WithMoreLeft);
    let interval = Duration::from_secs(20);
    let near = |wait: Duration| wait <= interval && wait > interval - Duration::from_secs(2);
    match budgets.take(&budget).await.unwrap() {
        Taken::TheLast { next_in } => assert!(near(next_in), "{next_in:?}"),
        other => panic!("the third of three: {other:?}"),
    }
    match budgets.take(&budget).await.unwrap() {
        Taken::NoneLeft { next_in } => assert!(near(next_in), "{next_in:?}"),
        other => panic!("a fourth: {other:?}"),
    }
    // The key holds one subject in its hash tag and expires with the budget.
    let key = budgets.key(&budget);
    assert!(key.ends_with("{ip:192.0.2.1}:limit:test"), "{key}");
    let mut redis = redis::Client::open(settings.redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let ttl: i64 = redis::AsyncCommands::pttl(&mut redis, &key).await.unwrap();
    assert!((1..=60_000).contains(&ttl), "{ttl}");
}
