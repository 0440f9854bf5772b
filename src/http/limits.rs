//! Abuse limits, enforced at the HTTP edge before any expensive work:
//!
//! - login: per client IP, per account and client IP (tight), and per account
//!   (looser), all checked before a password is hashed. An attacker on one
//!   address exhausts their own account-and-IP allowance long before the
//!   account's, so the real user, elsewhere, can still sign in;
//! - bearer routes: a client IP that keeps presenting invalid tokens gets 429
//!   before any cache or database lookup, so random `sub` values cannot
//!   hammer Postgres;
//! - introspection: per service key, apart from the above (a service
//!   legitimately introspects many invalid tokens).
//!
//! The login and invalid-bearer limits are one budget for the whole cluster:
//! a GCRA per key in Redis (`cache::budgets`), taken in one round trip, only
//! where a limit applies (every login attempt, and a bearer request once it
//! has failed: a good token never waits for Redis). governor keyed limiters
//! in this process stand in front as the first line (a flood on one instance
//! is refused before any Redis traffic) and are what applies while Redis
//! cannot be asked: limits degrade to per instance, logged and counted, never
//! to none. Introspection is limited per instance only. Local state is
//! pruned on a timer, so memory stays bounded by recent keys.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;

use crate::cache::CacheError;
use crate::cache::budgets::{Budget, Budgets, Taken};
use crate::config::LimitSettings;
use crate::metrics::{Area, Metrics};
use crate::types::service_keys::ServiceKeyId;

/// Longest username or tenant name part of an account key; longer input is
/// not a real account anyway and must not grow the limiter's memory.
const MAX_KEY_PART: usize = 128;

/// Over a limit: retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RetryAfter(pub u64);

/// A login attempt over a limit; `account`: one of the account's own
/// limits (not only the address's), which is worth recording.
#[derive(Debug)]
pub struct LoginRefused {
    pub retry: RetryAfter,
    pub account: bool,
}

impl From<LoginRefused> for RetryAfter {
    fn from(refused: LoginRefused) -> Self {
        refused.retry
    }
}

pub struct Limits {
    login_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    login_per_account_ip: DefaultKeyedRateLimiter<(String, IpAddr)>,
    login_per_account: DefaultKeyedRateLimiter<String>,
    /// Reports the remaining allowance, so the failure that uses up the last
    /// of it blocks the address at once.
    failed_verifications: DefaultKeyedRateLimiter<IpAddr, StateInformationMiddleware>,
    failure_quota: Quota,
    /// Addresses whose failed verifications ran over their limit, until when.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    introspections: DefaultKeyedRateLimiter<ServiceKeyId>,
    trusted_proxies: Vec<IpNet>,
    clock: DefaultClock,
    metrics: Arc<LimitMetrics>,
    /// The cluster-wide budgets; `None`: this instance's limiters only.
    shared: Option<Budgets>,
    settings: LimitSettings,
    /// Whether the last shared check could not ask Redis.
    degraded: AtomicBool,
}

/// Requests refused by a limit, and limit checks made without Redis.
pub struct LimitMetrics {
    rate_limited: prometheus::IntCounterVec,
    degraded: prometheus::IntCounter,
}

impl Area for LimitMetrics {
    fn register(metrics: &Metrics) -> Self {
        Self {
            rate_limited: metrics.counter_vec(
                "rate_limited_total",
                "Requests refused by a rate limit, by limit",
                &["limit"],
            ),
            degraded: metrics.counter(
                "rate_limit_degraded_total",
                "Limit checks this instance made alone because Redis could not be asked",
            ),
        }
    }
}

impl LimitMetrics {
    fn rate_limited(&self, limit: &str) {
        self.rate_limited.with_label_values(&[limit]).inc();
    }
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).expect("at least 1"))
}

impl Limits {
    pub fn new(settings: &LimitSettings, shared: Option<Budgets>, metrics: Metrics) -> Self {
        Self {
            login_per_ip: DefaultKeyedRateLimiter::keyed(per_minute(settings.login_per_ip)),
            login_per_account_ip: DefaultKeyedRateLimiter::keyed(per_minute(
                settings.login_per_account_ip,
            )),
            login_per_account: DefaultKeyedRateLimiter::keyed(per_minute(
                settings.login_per_account,
            )),
            failed_verifications: DefaultKeyedRateLimiter::keyed(per_minute(
                settings.failed_verifications_per_ip,
            ))
            .with_middleware::<StateInformationMiddleware>(),
            failure_quota: per_minute(settings.failed_verifications_per_ip),
            blocked: Mutex::default(),
            introspections: DefaultKeyedRateLimiter::keyed(Quota::per_second(
                NonZeroU32::new(settings.introspections_per_key.max(1)).expect("at least 1"),
            )),
            trusted_proxies: settings.trusted_proxies.clone(),
            clock: DefaultClock::default(),
            metrics: metrics.area(),
            shared,
            settings: settings.clone(),
            degraded: AtomicBool::new(false),
        }
    }

    /// The client's address (see `client_address`).
    pub fn client_ip(&self, req: &HttpRequest) -> IpAddr {
        super::client_address::client_ip(req, &self.trusted_proxies)
    }

    /// Checks (and counts) a login attempt before any password is hashed:
    /// this instance's limiters, then the cluster's budgets.
    pub async fn check_login(
        &self,
        ip: IpAddr,
        tenant: &str,
        username: &str,
    ) -> Result<(), LoginRefused> {
        let account = account_key(tenant, username);
        let by = |account| move |retry| LoginRefused { retry, account };
        self.check(&self.login_per_ip, &ip, "login_per_ip")
            .map_err(by(false))?;
        self.check(
            &self.login_per_account_ip,
            &(account.clone(), ip),
            "login_per_account_ip",
        )
        .map_err(by(true))?;
        self.check(&self.login_per_account, &account, "login_per_account")
            .map_err(by(true))?;
        let account = account_tag(&account);
        let s = &self.settings;
        let budget = |subject: String, name: String, per_minute| Budget {
            subject,
            name,
            per_minute,
        };
        // Per account and address: the account is the hash tag, the address
        // goes in the key's name.
        let budgets = [
            (
                "login_per_ip",
                budget(format!("ip:{ip}"), "login".into(), s.login_per_ip),
            ),
            (
                "login_per_account_ip",
                budget(
                    account.clone(),
                    format!("login:{ip}"),
                    s.login_per_account_ip,
                ),
            ),
            (
                "login_per_account",
                budget(account, "login".into(), s.login_per_account),
            ),
        ];
        let taken =
            futures_util::future::join_all(budgets.iter().map(|(_, b)| self.take_shared(b))).await;
        let refused = budgets
            .iter()
            .zip(taken)
            .filter_map(|((limit, _), taken)| match taken {
                Some(Taken::NoneLeft { next_in }) => Some((*limit, next_in)),
                _ => None,
            })
            .max_by_key(|(_, wait)| *wait);
        match refused {
            Some((limit, wait)) => Err(LoginRefused {
                retry: self.refused(limit, wait),
                account: limit != "login_per_ip",
            }),
            None => Ok(()),
        }
    }

    /// Whether `ip` may present a bearer token now; no counting.
    pub fn check_bearer(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        match blocked.get(&ip) {
            Some(until) if *until > Instant::now() => {
                self.metrics.rate_limited("failed_verifications_per_ip");
                Err(retry_after(until.saturating_duration_since(Instant::now())))
            }
            Some(_) => {
                blocked.remove(&ip);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts an invalid bearer token from `ip`, here and in the cluster's
    /// budget. The one that uses up either allowance blocks the address on
    /// this instance until the allowance refills by one; another instance
    /// blocks it at the first invalid token it sees from there.
    pub async fn record_failed_verification(&self, ip: IpAddr) {
        let local = match self.failed_verifications.check_key(&ip) {
            Ok(state) if state.remaining_burst_capacity() > 0 => None,
            Ok(_) => Some(self.failure_quota.replenish_interval()),
            Err(not_until) => Some(not_until.wait_time_from(self.clock.now())),
        };
        let wait = match local {
            Some(wait) => wait,
            None => {
                let budget = Budget {
                    subject: format!("ip:{ip}"),
                    name: "invalid-bearer".to_owned(),
                    per_minute: self.settings.failed_verifications_per_ip,
                };
                match self.take_shared(&budget).await {
                    // This one took the last of it (as governor, above), or
                    // another instance did.
                    Some(Taken::TheLast { next_in } | Taken::NoneLeft { next_in }) => next_in,
                    Some(Taken::WithMoreLeft) | None => return,
                }
            }
        };
        tracing::info!(%ip, wait_ms = wait.as_millis() as u64, "throttling failed verifications");
        self.blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ip, Instant::now() + wait);
    }

    pub fn check_introspection(&self, key: ServiceKeyId) -> Result<(), RetryAfter> {
        self.check(&self.introspections, &key, "introspections_per_key")
    }

    fn check<K: Clone + std::hash::Hash + Eq>(
        &self,
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
        limit: &'static str,
    ) -> Result<(), RetryAfter> {
        limiter
            .check_key(key)
            .map_err(|not_until| self.refused(limit, not_until.wait_time_from(self.clock.now())))
    }

    fn refused(&self, limit: &'static str, wait: Duration) -> RetryAfter {
        tracing::info!(limit, "rate limit reached");
        self.metrics.rate_limited(limit);
        retry_after(wait)
    }

    /// Takes a cell of the cluster's `budget`; `None` if Redis cannot be
    /// asked (this instance's limiter has already let it through: the limit
    /// holds per instance meanwhile).
    async fn take_shared(&self, budget: &Budget) -> Option<Taken> {
        let shared = self.shared.as_ref()?;
        match shared.take(budget).await {
            Ok(taken) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("shared rate limits answer again; limits are cluster-wide");
                }
                Some(taken)
            }
            Err(e) => {
                self.note_degraded(&e);
                None
            }
        }
    }

    fn note_degraded(&self, error: &CacheError) {
        self.metrics.degraded.inc();
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, "shared rate limits unavailable; limiting per instance");
        }
    }

    /// Forgets keys whose state is back to fresh and gives memory back.
    pub fn prune(&self) {
        // The limiters differ in key and middleware types: one line each.
        macro_rules! prune {
            ($($limiter:ident),*) => {$(
                self.$limiter.retain_recent();
                self.$limiter.shrink_to_fit();
            )*};
        }
        prune!(
            login_per_ip,
            login_per_account_ip,
            login_per_account,
            failed_verifications,
            introspections
        );
        let now = Instant::now();
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        blocked.retain(|_, until| *until > now);
        blocked.shrink_to_fit();
    }
}

/// Seconds to wait, rounded up, at least 1.
fn retry_after(wait: Duration) -> RetryAfter {
    RetryAfter(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(RetryAfter(1))
}

/// The hash tag of an account's shared budgets: a digest of its key, so
/// that any spelling fits a Redis key.
fn account_tag(account: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(account.as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("account:{hex}")
}

/// One account across spellings: tenant and username, lowercased and bounded.
fn account_key(tenant: &str, username: &str) -> String {
    let bounded = |s: &str| {
        s.chars()
            .take(MAX_KEY_PART)
            .collect::<String>()
            .to_lowercase()
    };
    format!("{}\u{0}{}", bounded(tenant), bounded(username))
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::RateLimiter;
    use governor::clock::FakeRelativeClock;
    use governor::middleware::NoOpMiddleware;
    use governor::state::keyed::DefaultKeyedStateStore;

    fn settings() -> LimitSettings {
        LimitSettings {
            login_per_ip: 100,
            login_per_account_ip: 3,
            login_per_account: 10,
            failed_verifications_per_ip: 2,
            introspections_per_key: 1000,
            trusted_proxies: Vec::new(),
        }
    }

    #[tokio::test]
    async fn one_address_cannot_lock_an_account_for_the_others() {
        let limits = Limits::new(&settings(), None, Metrics::new());
        let (attacker, user) = (
            "198.51.100.66".parse().unwrap(),
            "198.51.100.7".parse().unwrap(),
        );
        for _ in 0..3 {
            assert!(limits.check_login(attacker, "acme", "alice").await.is_ok());
        }
        assert!(
            limits.check_login(attacker, "acme", "ALICE").await.is_err(),
            "same account, any case"
        );
        assert!(limits.check_login(user, "acme", "alice").await.is_ok());
    }

    #[tokio::test]
    async fn failed_verifications_block_then_release() {
        let limits = Limits::new(&settings(), None, Metrics::new());
        let ip: IpAddr = "198.51.100.5".parse().unwrap();
        limits.record_failed_verification(ip).await;
        assert!(limits.check_bearer(ip).is_ok(), "within the allowance");
        limits.record_failed_verification(ip).await;
        let RetryAfter(seconds) = limits.check_bearer(ip).unwrap_err();
        assert!((1..=30).contains(&seconds), "{seconds}");
        assert!(
            limits.check_bearer("198.51.100.6".parse().unwrap()).is_ok(),
            "others unaffected"
        );
    }

    #[test]
    fn a_million_distinct_keys_are_forgotten_once_fresh() {
        let clock = FakeRelativeClock::default();
        type Limiter = RateLimiter<
            u32,
            DefaultKeyedStateStore<u32>,
            FakeRelativeClock,
            NoOpMiddleware<<FakeRelativeClock as Clock>::Instant>,
        >;
        let limiter = Limiter::new(
            per_minute(5),
            DefaultKeyedStateStore::default(),
            clock.clone(),
        );
        for key in 0..1_000_000u32 {
            let _ = limiter.check_key(&key);
        }
        assert_eq!(limiter.len(), 1_000_000);
        limiter.retain_recent();
        assert_eq!(limiter.len(), 1_000_000, "still recent");
        clock.advance(Duration::from_secs(60));
        limiter.retain_recent();
        limiter.shrink_to_fit();
        assert_eq!(limiter.len(), 0, "state is back to fresh, so it is dropped");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after(Duration::from_millis(1)), RetryAfter(1));
        assert_eq!(retry_after(Duration::from_millis(1500)), RetryAfter(2));
        assert_eq!(retry_after(Duration::ZERO), RetryAfter(1));
    }
}
