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
//! The limiters are governor keyed limiters in this process's memory: each
//! instance behind a load balancer counts on its own (see the README). Their
//! state is pruned on a timer, so memory stays bounded by recent keys.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;

use crate::config::LimitSettings;
use crate::metrics::Metrics;
use crate::types::service_keys::ServiceKeyId;

/// Longest username or tenant name part of an account key; longer input is
/// not a real account anyway and must not grow the limiter's memory.
const MAX_KEY_PART: usize = 128;

/// Over a limit: retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RetryAfter(pub u64);

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
    metrics: Metrics,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).expect("at least 1"))
}

impl Limits {
    pub fn new(settings: &LimitSettings, metrics: Metrics) -> Self {
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
            metrics,
        }
    }

    /// The client's address: the socket peer, unless the peer is a trusted
    /// proxy; then the rightmost address of `X-Forwarded-For` that is not a
    /// trusted proxy itself. A forged header from anyone else changes nothing.
    pub fn client_ip(&self, req: &HttpRequest) -> IpAddr {
        let peer = req
            .peer_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |addr| addr.ip().to_canonical());
        if !self.is_trusted(peer) {
            return peer;
        }
        let forwarded: Vec<IpAddr> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|part| part.trim().parse::<IpAddr>().ok())
            .map(|ip| ip.to_canonical())
            .collect();
        forwarded
            .iter()
            .rev()
            .find(|ip| !self.is_trusted(**ip))
            .or(forwarded.first())
            .copied()
            .unwrap_or(peer)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// Checks (and counts) a login attempt before any password is hashed.
    pub fn check_login(&self, ip: IpAddr, tenant: &str, username: &str) -> Result<(), RetryAfter> {
        let account = account_key(tenant, username);
        self.check(&self.login_per_ip, &ip, "login_per_ip")?;
        self.check(
            &self.login_per_account_ip,
            &(account.clone(), ip),
            "login_per_account_ip",
        )?;
        self.check(&self.login_per_account, &account, "login_per_account")
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

    /// Counts an invalid bearer token from `ip`. The one that uses up the
    /// allowance blocks the address until the allowance refills by one.
    pub fn record_failed_verification(&self, ip: IpAddr) {
        let wait = match self.failed_verifications.check_key(&ip) {
            Ok(state) if state.remaining_burst_capacity() > 0 => return,
            Ok(_) => self.failure_quota.replenish_interval(),
            Err(not_until) => not_until.wait_time_from(self.clock.now()),
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
        limiter.check_key(key).map_err(|not_until| {
            tracing::info!(limit, "rate limit reached");
            self.metrics.rate_limited(limit);
            retry_after(not_until.wait_time_from(self.clock.now()))
        })
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
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        }
    }

    fn request(peer: &str, forwarded: Option<&str>) -> HttpRequest {
        let mut req = actix_web::test::TestRequest::default().peer_addr(peer.parse().unwrap());
        if let Some(forwarded) = forwarded {
            req = req.insert_header(("X-Forwarded-For", forwarded));
        }
        req.to_http_request()
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let limits = Limits::new(&settings(), Metrics::new());
        let ip = |peer, xff| limits.client_ip(&request(peer, xff)).to_string();
        assert_eq!(
            ip("203.0.113.9:1", Some("198.51.100.1")),
            "203.0.113.9",
            "untrusted peer"
        );
        assert_eq!(ip("10.0.0.1:1", Some("198.51.100.1")), "198.51.100.1");
        assert_eq!(
            ip("10.0.0.1:1", Some("198.51.100.7, 198.51.100.1, 10.0.0.2")),
            "198.51.100.1",
            "rightmost untrusted"
        );
        assert_eq!(ip("10.0.0.1:1", Some("garbage")), "10.0.0.1");
        assert_eq!(ip("10.0.0.1:1", None), "10.0.0.1");
    }

    #[test]
    fn one_address_cannot_lock_an_account_for_the_others() {
        let limits = Limits::new(&settings(), Metrics::new());
        let (attacker, user) = (
            "198.51.100.66".parse().unwrap(),
            "198.51.100.7".parse().unwrap(),
        );
        for _ in 0..3 {
            assert!(limits.check_login(attacker, "acme", "alice").is_ok());
        }
        assert!(
            limits.check_login(attacker, "acme", "ALICE").is_err(),
            "same account, any case"
        );
        assert!(limits.check_login(user, "acme", "alice").is_ok());
    }

    #[test]
    fn failed_verifications_block_then_release() {
        let limits = Limits::new(&settings(), Metrics::new());
        let ip: IpAddr = "198.51.100.5".parse().unwrap();
        limits.record_failed_verification(ip);
        assert!(limits.check_bearer(ip).is_ok(), "within the allowance");
        limits.record_failed_verification(ip);
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
