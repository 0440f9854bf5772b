//! Checks answered from the current state: each tenant's `TenantView` is
//! held in process and used only while it is known current.
//!
//! Postgres carries every change (each write moves the tenant's
//! `authz_version` in its own transaction), so no crash, Redis failover or
//! lost message can leave a removed permission granted:
//! 1. `watch` reads the versions of the tenants held every 100 ms and drops
//!    every view whose tenant moved on: a removal is refused everywhere
//!    within about that.
//! 2. Views are used only while a watch read succeeded within the last
//!    second; past that every check reads Postgres (or answers 503).
//! 3. A check asking for `min_version` newer than the view held reads
//!    Postgres first: read-your-writes on any instance.
//!
//! A view is read version first, then its rows: rows can only be newer than
//! the version they are labelled with, never older.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::roles::Role;
use super::view::TenantView;
use crate::db::{self, Db};
use crate::domain::error::DomainError;
use crate::types::ids::TenantId;

/// How often the versions of the tenants held are read.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(100);
/// How long views stay usable after the versions were last read.
const TRUSTED_FOR: Duration = Duration::from_secs(1);
/// Tenants whose views are held at most; past it, one is forgotten.
const MAX_TENANTS: usize = 4096;

/// The authorization views of the tenants checked recently.
#[derive(Clone)]
pub struct Authz {
    db: Db,
    views: Arc<Mutex<HashMap<TenantId, Arc<TenantView>>>>,
    /// Unix milliseconds until which held views may be used.
    trusted_until: Arc<AtomicU64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Authz {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            views: Arc::default(),
            trusted_until: Arc::default(),
        }
    }

    fn held(&self, tenant: TenantId) -> Option<Arc<TenantView>> {
        if now_ms() >= self.trusted_until.load(Ordering::Acquire) {
            return None;
        }
        let views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        views.get(&tenant).cloned()
    }

    /// The tenant's view if it can be known current without waiting on a
    /// Postgres that does not answer: the one held, or one read now while
    /// the watch reaches Postgres; `None` (grant nothing) past that. For
    /// answers that carry roles beside an identity (introspection, `/v1/me`,
    /// forward-auth), which stay available from caches while Postgres is down.
    pub async fn current(&self, tenant: TenantId) -> Option<Arc<TenantView>> {
        if now_ms() >= self.trusted_until.load(Ordering::Acquire) {
            return None;
        }
        match self.view(tenant, None).await {
            Ok(view) => Some(view),
            Err(e) => {
                tracing::warn!(error = %crate::domain::error::ErrorChain(&e), "cannot read a tenant's roles; answered without them");
                None
            }
        }
    }

    /// The tenant's view, at least at `min_version` when one is asked for.
    pub async fn view(
        &self,
        tenant: TenantId,
        min_version: Option<i64>,
    ) -> Result<Arc<TenantView>, DomainError> {
        let held = self.held(tenant);
        if let Some(view) = &held
            && min_version.is_none_or(|least| view.version >= least)
        {
            return Ok(view.clone());
        }
        // Boxed: the loading future is large, and callers' futures would
        // otherwise carry (and move) it on every call, hit or miss.
        Box::pin(self.refresh(tenant, held)).await
    }

    /// The tenant's view from Postgres, kept for the next callers; `held`
    /// is answered again if Postgres has no newer version.
    async fn refresh(
        &self,
        tenant: TenantId,
        held: Option<Arc<TenantView>>,
    ) -> Result<Arc<TenantView>, DomainError> {
        // Asked for a newer version than held: when Postgres has no newer
        // one (a version no write returned), the view held is current, and
        // one row is read rather than the tenant's roles.
        if let Some(view) = held {
            let version = self
                .db
                .query(async |conn| db::roles::version(conn, tenant).await)
                .await?;
            if version == view.version {
                return Ok(view);
            }
        }
        let view = Arc::new(self.load(tenant).await?);
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        if views.len() >= MAX_TENANTS
            && !views.contains_key(&tenant)
            && let Some(any) = views.keys().next().copied()
        {
            views.remove(&any);
        }
        let newer = views
            .get(&tenant)
            .is_none_or(|held| held.version <= view.version);
        if newer {
            views.insert(tenant, view.clone());
        }
        Ok(view)
    }

    async fn load(&self, tenant: TenantId) -> Result<TenantView, DomainError> {
        self.db
            .transaction(async |conn| {
                let version = db::roles::version(conn, tenant).await?;
                let roles = db::roles::all(conn, tenant).await?;
                let assignments = db::roles::assignments(conn, tenant).await?;
                let roles = roles
                    .into_iter()
                    .map(|row| {
                        let id = row.id;
                        let role = Role::try_from(row)?;
                        Ok((id, role.name, role.permissions))
                    })
                    .collect::<Result<Vec<_>, DomainError>>()?;
                Ok(TenantView::new(version, roles, assignments))
            })
            .await
    }

    /// Reads the versions of the tenants held and drops every view whose
    /// tenant moved on; until stopped.
    pub async fn watch(self) {
        let mut ticks = tokio::time::interval(WATCH_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let started = now_ms();
            let held: Vec<(TenantId, i64)> = {
                let views = self.views.lock().unwrap_or_else(|e| e.into_inner());
                views.iter().map(|(id, view)| (*id, view.version)).collect()
            };
            let ids: Vec<TenantId> = held.iter().map(|(id, _)| *id).collect();
            let read = self
                .db
                .query(async |conn| db::roles::versions(conn, &ids).await)
                .await;
            match read {
                Ok(current) => {
                    let current: HashMap<TenantId, i64> = current.into_iter().collect();
                    let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
                    views.retain(|id, view| current.get(id) == Some(&view.version));
                    let until = started + u64::try_from(TRUSTED_FOR.as_millis()).unwrap_or(0);
                    self.trusted_until.store(until, Ordering::Release);
                }
                Err(e) => {
                    tracing::warn!(error = %crate::domain::error::ErrorChain(&e), "cannot read authorization versions; checks read Postgres until it answers");
                }
            }
        }
    }
}
