//! Keeps the in-process level (`cache::local`) of every instance honest: each
//! committed change of a user's key record is announced on a Redis pub/sub
//! channel (by `RecordCache::announce`, after the new record is in Redis), and
//! every instance's subscriber forgets that user locally.
//!
//! The subscriber holds a dedicated connection (pub/sub needs one of its
//! own) and pings over it every `heartbeat`. The local level is live only
//! while the subscription is confirmed: when the connection closes or a ping
//! goes unanswered within the Redis timeout, the local level is flushed and
//! bypassed until a new subscription is in place, then flushed again.
//!
//! The subscription follows the topology (`Resolver`): on a standalone
//! server it is that server; under Sentinel it is the master the Sentinels
//! name, and each heartbeat also asks them whether the master has moved
//! (a failover that left the old master running); on a cluster it is any
//! reachable node (a `PUBLISH` reaches every node), the next one in the list
//! when the one it was on is lost.
//!
//! The pooled connections follow the subscription: they are closed when it
//! is lost and again once it is back (those opened meanwhile may lead to the
//! old master), so commands go where the subscribers listen. An announcement
//! that reaches no subscriber, not even this instance's, is caught by
//! `RecordCache::announce`.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{ConnectionAddr, ConnectionInfo, RedisConnectionInfo};

use super::local::LocalCache;
use super::metrics::CacheMetrics;
use super::pool::RedisPool;
use super::topology::Topology;
use crate::metrics::Metrics;
use crate::types::ids::UserId;

/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const MIN_BACKOFF: Duration = Duration::from_millis(50);

/// Where and how the subscriber listens.
#[derive(Clone)]
pub struct Subscription {
    pub topology: Topology,
    /// Its connections are closed whenever the subscription breaks (they
    /// most likely lead where it did) and once it is back.
    pub pool: RedisPool,
    /// Notified at every (re)subscription.
    pub subscribed: std::sync::Arc<tokio::sync::Notify>,
    pub channel: String,
    pub heartbeat: Duration,
    pub timeout: Duration,
}

/// Runs for as long as the runtime does: subscribes, applies invalidations
/// to `local`, and reconnects with backoff whenever the channel breaks.
pub async fn run<V: Clone + Send + Sync + 'static>(
    subscription: Subscription,
    local: LocalCache<V>,
    metrics: Metrics,
) {
    let metrics = metrics.area::<CacheMetrics>();
    let mut backoff = MIN_BACKOFF;
    let mut resolver = Resolver::new(&subscription.topology);
    loop {
        match subscribe(&subscription, &mut resolver).await {
            Ok((node, mut sink, mut stream)) => {
                // Connections opened while it was down may lead elsewhere;
                // from now on they open where the Sentinels say it is.
                subscription.pool.forget_connections();
                local.set_live(true);
                metrics.invalidation_channel(true);
                backoff = MIN_BACKOFF;
                tracing::info!(%node, "invalidation channel subscribed; in-process cache in use");
                subscription.subscribed.notify_one();
                let why = listen(
                    &subscription,
                    &mut resolver,
                    &node,
                    (&mut sink, &mut stream),
                    &local,
                    &metrics,
                )
                .await;
                local.set_live(false);
                metrics.invalidation_channel(false);
                // Pooled connections most likely lead where this one did.
                subscription.pool.forget_connections();
                tracing::warn!(
                    reason = why,
                    %node,
                    "invalidation channel lost; in-process cache flushed and bypassed"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to the invalidation channel; in-process cache bypassed");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn subscribe(
    s: &Subscription,
    resolver: &mut Resolver,
) -> Result<(ConnectionAddr, PubSubSink, PubSubStream), String> {
    let subscribed = async {
        let node = resolver.node().await?;
        let client = redis::Client::open(node.clone())?;
        let (mut sink, stream) = client.get_async_pubsub().await?.split();
        sink.subscribe(&s.channel).await?;
        Ok::<_, redis::RedisError>((node.addr().clone(), sink, stream))
    };
    match tokio::time::timeout(s.timeout * 4, subscribed).await {
        Ok(Ok(pair)) => Ok(pair),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {:?}", s.timeout * 4)),
    }
}

/// Applies messages until the channel breaks; returns why it broke.
async fn listen<V: Clone + Send + Sync + 'static>(
    s: &Subscription,
    resolver: &mut Resolver,
    node: &ConnectionAddr,
    (sink, stream): (&mut PubSubSink, &mut PubSubStream),
    local: &LocalCache<V>,
    metrics: &CacheMetrics,
) -> &'static str {
    let mut heartbeat = tokio::time::interval(s.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return "connection closed" };
                metrics.invalidation_received();
                match message.get_payload::<String>().ok().and_then(|p| UserId::parse(&p).ok()) {
                    Some(user) => local.invalidate(user),
                    None => {
                        // Unknown message: forget everything rather than guess.
                        tracing::warn!("unreadable invalidation message; flushing the in-process cache");
                        local.clear();
                    }
                }
            }
            _ = heartbeat.tick() => {
                let pong = tokio::time::timeout(s.timeout, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    return "heartbeat unanswered";
                }
                if resolver.master_moved_from(node, s.timeout).await {
                    return "the Sentinels named another master";
                }
            }
        }
    }
}

/// Finds the node to subscribe on, as the topology says.
enum Resolver {
    Standalone(ConnectionInfo),
    Sentinel {
        /// Built at the first subscription.
        client: Option<Box<SentinelClient>>,
        /// Database and credentials for the master.
        node: RedisConnectionInfo,
        sentinels: Vec<ConnectionInfo>,
        master: String,
        /// A connection to a Sentinel, kept for the heartbeat's question.
        asking: Option<MultiplexedConnection>,
    },
    Cluster {
        nodes: Vec<ConnectionInfo>,
        next: usize,
    },
}

impl Resolver {
    fn new(topology: &Topology) -> Self {
        match topology.clone() {
            Topology::Standalone(info) => Resolver::Standalone(info),
            Topology::Sentinel {
                sentinels,
                master,
                node,
            } => Resolver::Sentinel {
                client: None,
                node,
                sentinels,
                master,
                asking: None,
            },
            Topology::Cluster { nodes } => Resolver::Cluster { nodes, next: 0 },
        }
    }

    /// The node for the next subscription: the server, the master the
    /// Sentinels name now (checked to be a master), or the next cluster node.
    async fn node(&mut self) -> redis::RedisResult<ConnectionInfo> {
        match self {
            Resolver::Standalone(info) => Ok(info.clone()),
            Resolver::Sentinel {
                client,
                node,
                sentinels,
                master,
                ..
            } => {
                let client = match client {
                    Some(client) => client,
                    None => client.insert(Box::new(SentinelClient::build(
                        sentinels.clone(),
                        master.clone(),
                        Some(
                            SentinelNodeConnectionInfo::default()
                                .set_redis_connection_info(node.clone()),
                        ),
                        SentinelServerType::Master,
                    )?)),
                };
                Ok(client
                    .async_get_client()
                    .await?
                    .get_connection_info()
                    .clone())
            }
            Resolver::Cluster { nodes, next } => {
                let node = nodes[*next % nodes.len()].clone();
                *next = next.wrapping_add(1);
                Ok(node)
            }
        }
    }

    /// Under Sentinel, whether the Sentinels now name a master other than
    /// `subscribed`. An unreachable Sentinel answers no: the subscription
    /// itself is checked by its own heartbeat.
    ///
    /// Asked as the pool's connections and the subscription are resolved
    /// (the master's entry, `SENTINEL MASTER`), not with
    /// `GET-MASTER-ADDR-BY-NAME`: during a failover that one names the
    /// promoted replica before the Sentinel switches, while new connections
    /// still go to the old master (it stays a master until reconfigured), so
    /// the channel would move back and forth and connections opened in
    /// between would lead to the old master.
    async fn master_moved_from(&mut self, subscribed: &ConnectionAddr, timeout: Duration) -> bool {
        let Resolver::Sentinel {
            sentinels,
            master,
            asking,
            ..
        } = self
        else {
            return false;
        };
        let asked = tokio::time::timeout(timeout * 4, async {
            if asking.is_none() {
                *asking = Some(any_sentinel(sentinels).await?);
            }
            let conn = asking.as_mut().expect("set just above");
            redis::cmd("SENTINEL")
                .arg("MASTER")
                .arg(&*master)
                .query_async::<HashMap<String, String>>(conn)
                .await
        })
        .await;
        match asked {
            Ok(Ok(entry)) => {
                // An entry without an address: nothing to compare.
                let Some(named) = master_address(&entry) else {
                    return false;
                };
                let moved = !same_address(&named, subscribed);
                if moved {
                    tracing::warn!(from = %subscribed, to = %named, "the Sentinels named another master");
                }
                moved
            }
            Ok(Err(_)) | Err(_) => {
                *asking = None;
                false
            }
        }
    }
}

/// The address in a Sentinel's entry for a master (`SENTINEL MASTER`).
fn master_address(entry: &HashMap<String, String>) -> Option<ConnectionAddr> {
    let port = entry.get("port")?.parse().ok()?;
    Some(ConnectionAddr::Tcp(entry.get("ip")?.clone(), port))
}

async fn any_sentinel(sentinels: &[ConnectionInfo]) -> redis::RedisResult<MultiplexedConnection> {
    let mut last = None;
    for sentinel in sentinels {
        let client = redis::Client::open(sentinel.clone())?;
        match client.get_multiplexed_async_connection().await {
            Ok(conn) => return Ok(conn),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "no Sentinel listed"))
    }))
}

/// Whether two addresses name the same server, as written (`localhost` and
/// `127.0.0.1` are not resolved: Sentinels report what masters announce).
fn same_address(a: &ConnectionAddr, b: &ConnectionAddr) -> bool {
    a.to_string() == b.to_string()
}
