//! The verify path against forged and broken tokens. Each forged token is
//! signed with the user's real secret wherever that makes the attack
//! stronger, so only the check under test can reject it.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::helpers::{Member, TestApp, b64, claims_for, forge, sign, spawn_app};

/// Asserts the token gets the one invalid-token 401 from `/v1/me` and is
/// inactive on introspection.
async fn assert_rejected(app: &TestApp, token: &str, what: &str) {
    let response = app.me(token).await;
    assert_eq!(response.status(), 401, "{what}: /v1/me status");
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="tenant-jwt", error="invalid_token""#,
        "{what}"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "{what}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "type": "urn:tenant-jwt:problem:invalid_token",
            "title": "Invalid token",
            "status": 401,
            "code": "invalid_token",
        }),
        "{what}: body"
    );
    let introspection: Value = app.introspect(token).await.json().await.unwrap();
    assert_eq!(
        introspection,
        json!({ "active": false }),
        "{what}: introspection"
    );
}

async fn member(app: &TestApp, slug: &str) -> (Member, Vec<u8>) {
    let member = app.tenant_with_user(slug, "alice").await;
    let secret = app.secret_of(member.id, 1).await.expose().to_vec();
    (member, secret)
}

#[tokio::test]
async fn a_token_the_service_issued_verifies() {
    let app = spawn_app().await;
    let (m, secret) = member(&app, "acme").await;
    assert_eq!(app.me(&m.token).await.status(), 200);
    // Our own forging helper produces the same kind of token: proves the
    // rejections below come from the property each one changes.
    let good = sign(&claims_for(m.id, &m.tenant_id), &secret, "1");
    assert_eq!(app.me(&good).await.status(), 200);
}

#[tokio::test]
async fn another_users_secret_does_not_sign_for_this_user() {
    let app = spawn_app().await;
    let (alice, _) = member(&app, "acme").await;
    let mallory = app.create_user("acme", "mallory", "member").await;
    let mallory_id =
        tenant_jwt::types::ids::UserId::parse(mallory["id"].as_str().unwrap()).unwrap();
    let mallory_secret = app.secret_of(mallory_id, 1).await;
    let forged = sign(
        &claims_for(alice.id, &alice.tenant_id),
        mallory_secret.expose(),
        "1",
    );
    assert_rejected(&app, &forged, "alice's claims under mallory's secret").await;
}

#[tokio::test]
async fn algorithm_must_be_exactly_hs256() {
    let app = spawn_app().await;
    let (m, secret) = member(&app, "acme").await;
    let claims = claims_for(m.id, &m.tenant_id);
    let [_, payload, signature]: [&str; 3] =
        m.token.split('.').collect::<Vec<_>>().try_into().unwrap();

    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(&json!({ "typ": "JWT", "alg": alg, "kid": "1" }));
        assert_rejected(
            &app,
            &format!("{header}.{payload}."),
            &format!("alg {alg}, no signature"),
        )
        .await;
        assert_rejected(
            &app,
            &format!("{header}.{payload}.{signature}"),
            &format!("alg {alg}, real signature"),
        )
        .await;
    }
    let hs512 = forge(
        &json!({ "typ": "JWT", "alg": "HS512", "kid": "1" }),
        &claims,
        &secret,
        Algorithm::HS512,
    );
    assert_rejected(&app, &hs512, "HS512 with the user's secret").await;
    let rs256_confusion = forge(
        &json!({ "typ": "JWT", "alg": "RS256", "kid": "1" }),
        &claims,
        &secret,
        Algorithm::HS256,
    );
    assert_rejected(
        &app,
        &rs256_confusion,
        "RS256 header over an HMAC signature",
    )
    .await;
    let lowercase = forge(
        &json!({ "typ": "JWT", "alg": "hs256", "kid": "1" }),
        &claims,
        &secret,
        Algorithm::HS256,
    );
    assert_rejected(&app, &lowercase, "alg hs256").await;
}

#[tokio::test]
async fn key_urls_in_the_header_are_refused() {
    let app = spawn_app().await;
    let (m, secret) = member(&app, "acme").await;
    let claims = claims_for(m.id, &m.tenant_id);
    for (member, value) in [
        ("jku", json!("http://127.0.0.1:1/jwks.json")),
        ("x5u", json!("http://127.0.0.1:1/cert.pem")),
        ("jwk", json!({ "kty": "oct", "k": "AAAA" })),
    ] {
        let mut header = json!({ "typ": "JWT", "alg": "HS256", "kid": "1" });
        header[member] = value;
        assert_rejected(
            &app,
            &forge(&header, &claims, &secret, Algorithm::HS256),
            member,
        )
        .await;
    }
}

#[tokio::test]
async fn kid_must_name_a_usable_generation() {
    let app = spawn_app().await;
    let (m, secret) = member(&app, "acme").await;
    let claims = claims_for(m.id, &m.tenant_id);
    for kid in ["2", "0", "01", "-1", "one", ""] {
        assert_rejected(&app, &sign(&claims, &secret, kid), &format!("kid {kid:?}")).await;
    }
    let no_kid = forge(
        &json!({ "typ": "JWT", "alg": "HS256" }),
        &claims,
        &secret,
        Algorithm::HS256,
    );
    assert_rejected(&app, &no_kid, "no kid").await;
}

#[tokio::test]
async fn tampered_payload_with_the_original_signature() {
    let app = spawn_app().await;
    let (m, _) = member(&app, "acme").await;
    let [header, payload, signature]: [&str; 3] =
        m.token.split('.').collect::<Vec<_>>().try_into().unwrap();
    let mut claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    claims["role"] = json!("admin");
    assert_rejected(
        &app,
        &format!("{header}.{}.{signature}", b64(&claims)),
        "role raised",
    )
    .await;
    claims["role"] = json!("member");
    claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
    assert_rejected(
        &app,
        &format!("{header}.{}.{signature}", b64(&claims)),
        "exp extended",
    )
    .await;
}

#[tokio::test]
async fn time_claims_are_enforced() {
    let app = spawn_app().await;
    let (m, secret) = member(&app, "acme").await;
    let now = claims_for(m.id, &m.tenant_id)["iat"].as_i64().unwrap();
    let with = |field: &str, value: i64| {
        let mut claims = claims_for(m.id, &m.tenant_id);
        claims[field] = json!(value);
        sign(&claims, &secret, "1")
    };
    assert_rejected(&app, &with("exp", now - 60), "expired a minute ago").await;
    assert_rejected(&app, &with("nbf", now + 600), "nbf in ten minutes").await;
    assert_rejected(&app, &with("iat", now + 600), "issued in ten minutes").await;
    // Inside the leeway (5s in tests) a token still verifies.
    assert_eq!(app.me(&with("exp", now - 2)).await.status(), 200);
}

#[tokio::test]
async fn a_leaked_secret_mints_nothing_longer_lived_than_the_service_issues() {
    // Tests issue 900 s access tokens and allow 5 s of leeway: 905 s at most.
    let app = spawn_app().await;
    let (m, secret) = member(&app, "acme").await;
    let now = claims_for(m.id, &m.tenant_id)["iat"].as_i64().unwrap();
    let lived = |iat: i64, exp: i64| {
        let mut claims = claims_for(m.id, &m.tenant_id);
        claims["iat"] = json!(iat);
        claims["nbf"] = json!(iat);
        claims["exp"] = json!(exp);
        sign(&claims, &secret, "1")
    };
    let century = now + 100 * 365 * 86_400;
    assert_rejected(&app, &lived(now, century), "exp a century away").await;
    assert_rejected(&app, &lived(now, now + 906), "a second over the lifetime").await;
    assert_rejected(
        &app,
        &lived(now - 906, now - 1),
        "unexpired, but issued longer ago than a lifetime",
    )
    .await;
    let result = |reason: &str| format!("tenant_jwt_verifications_total{{outcome=\"{reason}\"}}");
    assert_eq!(
        app.counter(&result("lifetime_too_long")).await,
        Some(4.0),
        "the reason is counted (once by /v1/me, once by introspection, per token)"
    );
    assert_eq!(app.counter(&result("issued_too_long_ago")).await, Some(2.0));
    assert_eq!(
        app.me(&lived(now, now + 905)).await.status(),
        200,
        "exactly the longest lifetime is accepted"
    );
}

#[tokio::test]
async fn issuer_audience_and_required_claims_are_enforced() {
    let app = spawn_app().await;
    let (m, secret) = member(&app, "acme").await;
    let with = |field: &str, value: Value| {
        let mut claims = claims_for(m.id, &m.tenant_id);
        claims[field] = value;
        sign(&claims, &secret, "1")
    };
    assert_rejected(&app, &with("iss", json!("someone-else")), "wrong iss").await;
    assert_rejected(&app, &with("aud", json!("another-api")), "wrong aud").await;
    assert_rejected(
        &app,
        &with("tid", json!(uuid::Uuid::now_v7().to_string())),
        "another tenant's id",
    )
    .await;
    assert_rejected(
        &app,
        &with("role", json!("admin")),
        "role the user does not have",
    )
    .await;
    for required in ["exp", "iat", "jti", "sub", "iss", "aud", "nbf", "sid"] {
        let mut claims = claims_for(m.id, &m.tenant_id);
        claims.as_object_mut().unwrap().remove(required);
        assert_rejected(
            &app,
            &sign(&claims, &secret, "1"),
            &format!("no {required}"),
        )
        .await;
    }
}

#[tokio::test]
async fn subject_must_be_a_known_uuid() {
    let app = spawn_app().await;
    let (m, secret) = member(&app, "acme").await;
    let mut claims = claims_for(m.id, &m.tenant_id);
    claims["sub"] = json!("alice");
    assert_rejected(&app, &sign(&claims, &secret, "1"), "non-UUID sub").await;
    claims["sub"] = json!(42);
    assert_rejected(&app, &sign(&claims, &secret, "1"), "numeric sub").await;

    // A random UUID: unknown user, and remembered as such in Redis so the
    // next request with it does not reach Postgres.
    let stranger = uuid::Uuid::new_v4();
    claims["sub"] = json!(stranger.to_string());
    assert_rejected(&app, &sign(&claims, &secret, "1"), "unknown sub").await;
    let key = format!("{}{{{stranger}}}:record", app.settings.redis.key_prefix);
    let mut redis = app.redis().await;
    let cached: Option<String> = redis::AsyncCommands::get(&mut redis, &key).await.unwrap();
    assert_eq!(cached.as_deref(), Some("0|"), "negative cache entry");
    let ttl: i64 = redis::AsyncCommands::pttl(&mut redis, &key).await.unwrap();
    assert!(
        ttl > 0 && ttl <= 30_000,
        "negative entries expire quickly, got {ttl}ms"
    );
}

#[tokio::test]
async fn malformed_tokens_are_rejected_before_any_lookup() {
    let app = spawn_app().await;
    let (m, _) = member(&app, "acme").await;
    let [header, payload, _]: [&str; 3] =
        m.token.split('.').collect::<Vec<_>>().try_into().unwrap();
    let oversized = format!("{header}.{}.{}", "A".repeat(4096), "B".repeat(43));
    for (token, what) in [
        (format!("{header}.{payload}."), "empty signature"),
        (format!("{header}.{payload}"), "two segments"),
        (format!("{}.x", m.token), "four segments"),
        (oversized, "over 4 KiB"),
        (m.token.replace('.', "=."), "padding"),
        ("not-a-token".to_owned(), "garbage"),
    ] {
        assert_rejected(&app, &token, what).await;
    }
    // None of those reached the key-record cache (they count against the
    // address's invalid-bearer budget, a key of its own).
    assert!(
        app.redis_keys()
            .await
            .iter()
            .filter(|k| k.ends_with(":record"))
            .all(|k| k.contains(&format!("{{{}}}", m.id)))
    );
}

#[tokio::test]
async fn missing_or_foreign_credentials_get_a_bare_bearer_challenge() {
    let app = spawn_app().await;
    for auth in [None, Some("Basic YWxpY2U6c2VjcmV0"), Some("Bearer")] {
        let mut request = app.client.get(app.url("/v1/me"));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="tenant-jwt""#,
            "{auth:?}"
        );
    }
}

#[tokio::test]
async fn me_reports_the_user_and_the_token() {
    let app = spawn_app().await;
    let m = app.tenant_with_user("acme", "Alice").await;
    let response = app.me(&m.token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user_id"], m.id.to_string());
    assert_eq!(body["tenant_id"], m.tenant_id);
    assert_eq!(body["tenant"], "acme");
    assert_eq!(body["username"], "Alice");
    assert_eq!(body["role"], "member");
    let token = &body["token"];
    assert!(token["jti"].as_str().is_some());
    assert_eq!(
        token["exp"].as_i64().unwrap() - token["iat"].as_i64().unwrap(),
        900
    );
}

#[tokio::test]
async fn a_disabled_users_tokens_are_rejected() {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use tenant_jwt::db::schema::users;

    let app = spawn_app().await;
    let (m, _) = member(&app, "acme").await;
    let bob = app.create_user("acme", "bob", "member").await;
    let bob_token = app.token("acme", "bob").await;
    assert_eq!(app.me(&m.token).await.status(), 200);

    diesel::update(users::table.find(m.id.as_uuid()))
        .set((
            users::disabled_at.eq(diesel::dsl::now),
            users::record_version.eq(users::record_version + 1),
        ))
        .execute(&mut app.db().await)
        .await
        .unwrap();
    // Disabling through the API also invalidates the caches; here the row is
    // changed behind the service's back, so do what it would do by hand.
    app.flush_redis().await;
    app.announce(m.id).await;
    assert!(app.me_becomes(&m.token, 401).await, "announced, so dropped");
    assert_rejected(&app, &m.token, "disabled user").await;
    assert_eq!(
        app.me(&bob_token).await.status(),
        200,
        "{bob} is unaffected"
    );
}
