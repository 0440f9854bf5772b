//! Crash-consistent propagation of key-record changes to every instance.
//!
//! Every committed change of a user's key record has a row in the outbox
//! (`db::outbox`, written by a trigger in the change's own transaction). The
//! instance that made the change publishes it at once (`KeyRecords::publish`)
//! and marks the row. What that leaves undone, because the instance died
//! between commit and Redis, or Redis failed, every instance finishes:
//!
//! - `drain`: rows unpublished for `DRAIN_AFTER` are claimed (`FOR UPDATE SKIP
//!   LOCKED`, bounded batches, so instances share the work), published, and
//!   marked, each second and at start-up;
//! - `replay`: whenever this instance's invalidation subscription is
//!   (re)established, which includes every Redis reconnection and every
//!   Sentinel failover it follows, changes published within `REPLAY_WINDOW`
//!   are published again, so a write a failover lost (asynchronous
//!   replication) is written again;
//! - `prune`: published rows older than `KEEP_PUBLISHED` go.
//!
//! Publishing is idempotent (the record is read from Postgres afresh and
//! versioned writes never go backwards), so doing it twice is harmless.
//!
//! Bound: a saved change is enforced by every instance within about 3 s
//! (`DRAIN_AFTER` plus one tick plus the publish) while any instance runs and
//! Redis answers; with Redis unreachable, instances bypass their in-process
//! level and read Postgres, so it is enforced at once.

use std::sync::Arc;
use std::time::Duration;

use crate::db::{self, Db};
use crate::domain::error::DomainError;
use crate::domain::tokens::key_records::KeyRecords;
use crate::domain::tokens::metrics::TokenMetrics;
use crate::metrics::Metrics;

/// How long a change may wait for its own instance before others publish it.
pub const DRAIN_AFTER: Duration = Duration::from_secs(1);
/// Changes published this recently are published again after a failover.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(60);
/// Published rows are kept this long (longer than the replay window).
pub const KEEP_PUBLISHED: Duration = Duration::from_secs(300);
/// Rows claimed per transaction.
const BATCH: i64 = 50;

#[derive(Clone)]
pub struct Propagation {
    db: Db,
    key_records: KeyRecords,
    metrics: Arc<TokenMetrics>,
}

/// Publishes `change` without marking it (the drain marks the rows it
/// holds locked; marking from elsewhere would wait on those locks).
async fn put(key_records: &KeyRecords, change: &db::outbox::Change) -> Result<(), DomainError> {
    if change.deleted {
        key_records
            .put_deleted(change.user_id, change.version)
            .await
    } else {
        key_records.put_current(change.user_id).await.map(drop)
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Propagation {
    pub fn new(db: Db, key_records: KeyRecords, metrics: Metrics) -> Self {
        Self {
            db,
            key_records,
            metrics: metrics.area(),
        }
    }

    /// Publishes the changes left unpublished, batch by batch, until none is
    /// left or one fails (Redis still down: the next round tries again).
    pub async fn drain(&self) -> Result<usize, DomainError> {
        let mut published = 0;
        loop {
            let key_records = self.key_records.clone();
            let batch = self
                .db
                .transaction(async move |conn| {
                    let claimed =
                        db::outbox::claim_unpublished(conn, millis(DRAIN_AFTER), BATCH).await?;
                    let mut done = Vec::with_capacity(claimed.len());
                    for change in &claimed {
                        let outcome = put(&key_records, change).await;
                        if let Err(e) = outcome {
                            // Mark what was done; keep the rest for later.
                            db::outbox::mark_ids_published(conn, &done).await?;
                            return Err::<_, DomainError>(e);
                        }
                        done.push(change.id);
                    }
                    db::outbox::mark_ids_published(conn, &done).await?;
                    Ok(done.len())
                })
                .await?;
            if batch > 0 {
                self.metrics.changes_published("drain", batch as u64);
                tracing::info!(
                    changes = batch,
                    "published changes their own instance left unpublished"
                );
            }
            published += batch;
            if batch < BATCH as usize {
                return Ok(published);
            }
        }
    }

    /// Publishes again every change published within the replay window.
    pub async fn replay(&self) -> Result<usize, DomainError> {
        let recent = self
            .db
            .query(async |conn| db::outbox::published_within(conn, millis(REPLAY_WINDOW)).await)
            .await?;
        for change in &recent {
            put(&self.key_records, change).await?;
        }
        self.metrics
            .changes_published("replay", recent.len() as u64);
        Ok(recent.len())
    }

    /// Updates the backlog gauges: unpublished changes and the oldest's age.
    pub async fn observe(&self) -> Result<(), DomainError> {
        let backlog = self
            .db
            .query(async |conn| db::outbox::backlog(conn).await)
            .await?;
        let age = backlog.oldest.map_or(0.0, |oldest| {
            (backlog.now - oldest).as_seconds_f64().max(0.0)
        });
        self.metrics.outbox_backlog(backlog.unpublished, age);
        Ok(())
    }

    pub async fn prune(&self) -> Result<usize, DomainError> {
        Ok(self
            .db
            .query(async |conn| db::outbox::prune(conn, millis(KEEP_PUBLISHED)).await)
            .await?)
    }
}
