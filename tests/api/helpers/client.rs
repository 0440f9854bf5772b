//! The calls tests make on a running instance, and direct looks at its
//! stores.

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use redis::AsyncCommands;
use serde_json::{Value, json};
use tenant_jwt::config::MasterKeySource;
use tenant_jwt::domain::keys::secrets::{MasterKey, UserSecret};
use tenant_jwt::types::ids::{Generation, UserId};

use super::{Member, PASSWORD, TestApp, redis_url, service_key};

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn create_tenant(&self, slug: &str) -> Value {
        let response = self
            .client
            .post(self.url("/v1/tenants"))
            .bearer_auth(service_key())
            .json(&json!({ "slug": slug, "name": format!("Tenant {slug}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "creating tenant {slug}");
        response.json().await.unwrap()
    }

    pub async fn create_user(&self, tenant: &str, username: &str, role: &str) -> Value {
        let response = self
            .client
            .post(self.url(&format!("/v1/tenants/{tenant}/users")))
            .bearer_auth(service_key())
            .json(&json!({ "username": username, "password": PASSWORD, "role": role }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "creating user {username}");
        response.json().await.unwrap()
    }

    pub async fn login(&self, tenant: &str, username: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/v1/tenants/{tenant}/login")))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap()
    }

    /// Logs in with the standard test password and returns the access token.
    pub async fn token(&self, tenant: &str, username: &str) -> String {
        self.token_with(tenant, username, PASSWORD).await
    }

    pub async fn token_with(&self, tenant: &str, username: &str, password: &str) -> String {
        let response = self.login(tenant, username, password).await;
        assert_eq!(response.status(), 200, "login of {username}");
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A tenant with one member, logged in.
    pub async fn tenant_with_user(&self, slug: &str, username: &str) -> Member {
        let tenant = self.create_tenant(slug).await;
        let user = self.create_user(slug, username, "member").await;
        Member {
            tenant_id: tenant["id"].as_str().unwrap().to_owned(),
            id: UserId::parse(user["id"].as_str().unwrap()).unwrap(),
            token: self.token(slug, username).await,
        }
    }

    /// Rotates `user`'s secret as the calling service, without a grace period.
    pub async fn rotate_secret(&self, tenant: &str, user: UserId) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/v1/tenants/{tenant}/users/{user}/rotate-secret")))
            .bearer_auth(service_key())
            .send()
            .await
            .unwrap()
    }

    pub async fn me(&self, token: &str) -> reqwest::Response {
        self.client
            .get(self.url("/v1/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The status `/readyz` answers now.
    pub async fn readyz(&self) -> u16 {
        let ready = self.client.get(self.url("/readyz")).send().await.unwrap();
        ready.status().as_u16()
    }

    /// GET `path` as the calling service; the JSON body.
    pub async fn service_get(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .bearer_auth(service_key())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn introspect(&self, token: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/introspect"))
            .bearer_auth(service_key())
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
    }

    /// A direct connection to this instance's database.
    pub async fn db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(self.settings.database.url.as_str())
            .await
            .unwrap()
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Every Redis key of this instance.
    pub async fn redis_keys(&self) -> Vec<String> {
        let mut conn = self.redis().await;
        conn.keys(format!("{}*", self.settings.redis.key_prefix))
            .await
            .unwrap()
    }

    /// Tells every instance sharing this prefix to forget `user` in process,
    /// as the service does after each change it makes.
    pub async fn announce(&self, user: UserId) {
        let channel = format!("{}invalidations", self.settings.redis.key_prefix);
        let _: i64 = self
            .redis()
            .await
            .publish(channel, user.to_string())
            .await
            .unwrap();
    }

    /// Waits (5 s at most) until this instance's invalidation subscription
    /// is up, so that its in-process cache is in use.
    pub async fn wait_for_local_cache(&self) {
        for _ in 0..100 {
            if self.metric("tenant_jwt_invalidation_channel_up").await == 1.0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the invalidation channel never came up");
    }

    /// The value of a metric series (name with its labels, if any).
    pub async fn metric(&self, name: &str) -> f64 {
        self.counter(name)
            .await
            .unwrap_or_else(|| panic!("no metric {name}"))
    }

    /// `/metrics`, as text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A counter series, `None` before its first increment.
    pub async fn counter(&self, name: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    }

    /// Polls `/v1/me` (for 2 s at most) until it answers `status`.
    pub async fn me_becomes(&self, token: &str, status: u16) -> bool {
        for _ in 0..200 {
            if self.me(token).await.status() == status {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Deletes everything this instance has in Redis (its own FLUSHALL; a real
    /// FLUSHALL would pull the cache from under the tests running beside it).
    pub async fn flush_redis(&self) {
        let keys = self.redis_keys().await;
        if !keys.is_empty() {
            let mut conn = self.redis().await;
            let _: () = conn.del(keys).await.unwrap();
        }
    }

    pub fn master_key(&self) -> MasterKey {
        match &self.settings.master_key {
            MasterKeySource::Inline(encoded) => MasterKey::from_base64(encoded).unwrap(),
            MasterKeySource::File(path) => MasterKey::load_or_create_file(path).unwrap().0,
        }
    }

    /// A user's plaintext secret for a generation, opened the way the service
    /// does: from the sealed row in Postgres with the master key.
    pub async fn secret_of(&self, user: UserId, generation: i64) -> UserSecret {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use tenant_jwt::db::schema::user_secrets;
        let mut conn = self.db().await;
        let sealed: Vec<u8> = user_secrets::table
            .filter(user_secrets::user_id.eq(user.as_uuid()))
            .filter(user_secrets::generation.eq(generation))
            .select(user_secrets::ciphertext)
            .first(&mut conn)
            .await
            .unwrap();
        self.master_key()
            .unseal(user, Generation::from_db(generation), &sealed)
            .unwrap()
    }
}
