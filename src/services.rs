//! The stores opened and checked, and the domain services wired on them:
//! what `serve` (see `startup`) and the CLI's commands both run on.

use std::sync::Arc;

use anyhow::Context;

use crate::cache::RecordCache;
use crate::cache::local::LocalCache;
use crate::config::{MasterKeySource, Settings};
use crate::db::{self, Db};
use crate::domain::accounts::console::ConsoleSessions;
use crate::domain::accounts::hashing::PasswordHasher;
use crate::domain::accounts::login::Accounts;
use crate::domain::accounts::sessions::Sessions;
use crate::domain::admin::Admin;
use crate::domain::authz::checks::Authz;
use crate::domain::authz::roles::Roles;
use crate::domain::credentials::Credentials;
use crate::domain::keys::rewrap;
use crate::domain::keys::secrets::KeyId;
use crate::domain::keys::secrets::MasterKey;
use crate::domain::tokens::claims::Issuer;
use crate::domain::tokens::key_records::{KeyRecords, LocalRecords};
use crate::domain::tokens::propagation::Propagation;
use crate::domain::tokens::verify::{TokenRules, Verifier};
use crate::domain::webhooks::endpoints::Webhooks;
use crate::metrics::Metrics;

/// What every command that touches users needs: the prepared database, the
/// checked master key and the cache.
pub struct Stores {
    pub pool: Db,
    pub master_key: Arc<MasterKey>,
    pub cache: RecordCache,
}

impl Stores {
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let pool = db::prepare_pool(&settings.database).await?;
        let master_key = Arc::new(open_master_key(&settings.master_key, &pool).await?);
        let cache = RecordCache::new(&settings.redis)?;
        cache
            .check()
            .await
            .with_context(|| format!("connecting to Redis ({})", cache.topology()))?;
        Ok(Self {
            pool,
            master_key,
            cache,
        })
    }
}

/// The domain services, wired from the stores: what `serve` and the CLI's
/// commands both run on.
pub struct Services {
    pub accounts: Accounts,
    pub admin: Admin,
    pub sessions: Sessions,
    pub verifier: Verifier,
    pub propagation: Propagation,
    pub credentials: Credentials,
    pub roles: Roles,
    pub authz: Authz,
    pub webhooks: Webhooks,
    pub console: ConsoleSessions,
}

impl Services {
    /// Wires the services on `stores`. `local` is the in-process level of
    /// key records: one kept in step by a running invalidation subscriber,
    /// or a disabled one.
    pub fn wire(
        settings: &Settings,
        stores: &Stores,
        hasher: PasswordHasher,
        local: LocalRecords,
        metrics: &Metrics,
    ) -> Self {
        let Stores {
            pool,
            master_key,
            cache,
        } = stores;
        let key_records = KeyRecords::new(
            pool.clone(),
            cache.clone(),
            local,
            master_key.clone(),
            metrics.clone(),
        );
        let verifier = Verifier::new(
            &settings.tokens,
            master_key.clone(),
            key_records.clone(),
            metrics.clone(),
        );
        let issuer = Issuer::new(settings.tokens.clone(), master_key.clone());
        let sessions = Sessions::new(
            pool.clone(),
            key_records.clone(),
            issuer.clone(),
            verifier.clone(),
            master_key.clone(),
            settings.tokens.refresh_ttl,
            metrics.clone(),
        );
        let credentials =
            Credentials::new(pool.clone(), settings.service_keys.clone(), metrics.clone());
        let admin = Admin::new(
            pool.clone(),
            hasher.clone(),
            master_key.clone(),
            key_records.clone(),
            sessions.clone(),
            credentials.clone(),
            metrics.clone(),
        );
        let console = ConsoleSessions::new(
            pool.clone(),
            verifier.clone(),
            TokenRules::new(&settings.tokens, master_key.clone()),
            key_records.clone(),
            issuer,
            sessions.clone(),
        );
        Self {
            console,
            accounts: Accounts::new(
                pool.clone(),
                hasher.clone(),
                master_key.clone(),
                key_records.clone(),
                sessions.clone(),
                metrics.clone(),
            ),
            roles: Roles::new(pool.clone(), admin.clone()),
            webhooks: Webhooks::new(
                pool.clone(),
                admin.clone(),
                master_key.clone(),
                settings.webhooks.allow_private,
            ),
            authz: Authz::new(pool.clone()),
            admin,
            credentials,
            propagation: Propagation::new(pool.clone(), key_records, metrics.clone()),
            sessions,
            verifier,
        }
    }

    /// For a command that changes users and exits: no subscriber, so no
    /// in-process level; changes are still announced to every instance.
    pub async fn for_command(settings: &Settings) -> anyhow::Result<Self> {
        let stores = Stores::open(settings).await?;
        let metrics = Metrics::new();
        let hasher = PasswordHasher::new(1, 8, &metrics)?;
        Ok(Self::wire(
            settings,
            &stores,
            hasher,
            LocalCache::disabled(),
            &metrics,
        ))
    }
}

/// Loads the master key (from the setting, or from the key file, creating it
/// on first start) and checks it is the key this database was set up with.
pub async fn open_master_key(source: &MasterKeySource, pool: &Db) -> anyhow::Result<MasterKey> {
    let key = match source {
        MasterKeySource::Inline(encoded) => {
            MasterKey::from_base64(encoded).context("TENANT_JWT_MASTER_KEY is invalid")?
        }
        MasterKeySource::File(path) => {
            let (key, created) = MasterKey::load_or_create_file(path)?;
            tracing::warn!(
                path = %path.display(),
                created,
                "no TENANT_JWT_MASTER_KEY set: using the master key file. Back it up: without it no stored secret can be opened"
            );
            key
        }
    };
    let check = key.key_check_value()?;
    let stored = pool
        .query(async |conn| db::master_key_check::get_or_insert(conn, &check).await)
        .await?;
    if !key.matches_key_check_value(&stored) {
        match KeyId::of(&stored) {
            Some(id) if !key.ids().contains(&id) => anyhow::bail!(
                "this database was set up with master key {id}, which is not listed \
                 (listed: {}); refusing to start (every stored secret would fail to open)",
                key.ids()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => anyhow::bail!(
                "the master key does not match the one this database was set up with; \
                 refusing to start (every stored secret would fail to open)"
            ),
        }
    }
    rewrap::check_listed_keys_open_everything(pool, &key)
        .await
        .map_err(|e| anyhow::anyhow!("{e}; refusing to start"))?;
    Ok(key)
}
