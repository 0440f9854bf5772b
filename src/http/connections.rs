//! Caps on client connections, so that clients holding connections open (a
//! body that never finishes, a head trickled byte by byte) cannot take the
//! file descriptors the service needs, nor crowd out everyone else:
//! - one for the instance, below the file-descriptor limit, leaving room for
//!   the Postgres and Redis pools and files (actix stops accepting at it);
//! - one per client address, checked as each connection is accepted: a
//!   connection over it is closed before a byte is read. Trusted proxies
//!   are exempt (their clients are behind one address).
//!
//! Slow heads are cut by actix's request timeout, slow bodies by
//! `body::read`; these caps bound how many can be held meanwhile.

use std::any::Any;
use std::collections::HashMap;
use std::net::{IpAddr, Shutdown};
use std::sync::{Arc, Mutex};

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use ipnet::IpNet;

use prometheus::{IntCounter, IntCounterVec};

use crate::metrics::{Area, Metrics, catch_up};

/// Descriptors kept back from client connections: pools, key file, logs,
/// the listener, and a margin.
const RESERVED_FDS: u64 = 512;

/// Raises the soft limit on open files to the hard one (as Go's runtime
/// does) and returns the soft limit in force.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// The instance's connection cap: the setting, or (0) what the descriptor
/// limit leaves once the reserve is kept back.
pub fn instance_cap(setting: usize, fd_limit: u64) -> usize {
    if setting > 0 {
        return setting;
    }
    let free = fd_limit.saturating_sub(RESERVED_FDS).max(64);
    usize::try_from(free).unwrap_or(usize::MAX)
}

/// Connections refused at a cap, and those the HTTP layer closed for a
/// fault of the client's (counted process-wide where actix logs them).
pub struct ConnectionMetrics {
    refused: IntCounterVec,
    errors: IntCounter,
}

impl Area for ConnectionMetrics {
    fn register(metrics: &Metrics) -> Self {
        Self {
            refused: metrics.counter_vec(
                "connections_refused_total",
                "Client connections closed as they were accepted, by cap",
                &["cap"],
            ),
            errors: metrics.counter(
                "http_connection_errors_total",
                "Client connections the HTTP layer closed for a malformed or oversized head, \
                 a timeout or a broken stream (in this process)",
            ),
        }
    }

    fn refresh(&self) {
        catch_up(&self.errors, crate::telemetry::connection_errors());
    }
}

/// Open connections per client address.
#[derive(Clone)]
pub struct PerAddressCap {
    max: usize,
    exempt: Arc<[IpNet]>,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    metrics: Arc<ConnectionMetrics>,
}

impl PerAddressCap {
    /// `max` 0: no cap.
    pub fn new(max: usize, exempt: &[IpNet], metrics: Metrics) -> Self {
        Self {
            max,
            exempt: exempt.into(),
            open: Arc::default(),
            metrics: metrics.area(),
        }
    }

    /// For `HttpServer::on_connect`: counts the connection while it lives
    /// (a guard in its extensions), or shuts it down if its address is at
    /// the cap.
    pub fn on_connect(&self, io: &dyn Any, extensions: &mut Extensions) {
        if self.max == 0 {
            return;
        }
        let Some(stream) = io.downcast_ref::<TcpStream>() else {
            return;
        };
        let Ok(peer) = stream.peer_addr() else { return };
        let ip = peer.ip().to_canonical();
        if self.exempt.iter().any(|net| net.contains(&ip)) {
            return;
        }
        if self.admit(ip) {
            extensions.insert(OpenConnection {
                ip,
                cap: self.clone(),
            });
        } else {
            self.metrics
                .refused
                .with_label_values(&["per_address"])
                .inc();
            let _ = socket2::SockRef::from(stream).shutdown(Shutdown::Both);
        }
    }

    fn admit(&self, ip: IpAddr) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= self.max {
            return false;
        }
        *count += 1;
        true
    }

    fn release(&self, ip: IpAddr) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&ip);
            }
        }
    }
}

/// One counted connection; uncounted when actix drops the connection.
struct OpenConnection {
    ip: IpAddr,
    cap: PerAddressCap,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.cap.release(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_cap_leaves_the_reserve() {
        assert_eq!(instance_cap(100, 20_000), 100, "a setting wins");
        assert_eq!(instance_cap(0, 20_000), 19_488);
        assert_eq!(instance_cap(0, 100), 64, "never below a floor");
    }

    #[test]
    fn an_address_is_admitted_up_to_the_cap_and_again_once_one_closes() {
        let cap = PerAddressCap::new(2, &[], Metrics::new());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(cap.admit(ip) && cap.admit(ip));
        assert!(!cap.admit(ip), "third connection refused");
        assert!(
            cap.admit("192.0.2.8".parse().unwrap()),
            "other addresses unaffected"
        );
        cap.release(ip);
        assert!(cap.admit(ip), "a slot freed");
    }
}
