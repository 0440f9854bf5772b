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

use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};

use super::local::LocalCache;
use crate::metrics::Metrics;
use crate::types::ids::UserId;

/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const MIN_BACKOFF: Duration = Duration::from_millis(50);

/// Where and how the subscriber listens.
#[derive(Clone)]
pub struct Subscription {
    pub client: redis::Client,
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
    let mut backoff = MIN_BACKOFF;
    loop {
        match subscribe(&subscription).await {
            Ok((mut sink, mut stream)) => {
                local.set_live(true);
                metrics.invalidation_channel(true);
                backoff = MIN_BACKOFF;
                tracing::info!("invalidation channel subscribed; in-process cache in use");
                let why = listen(&subscription, &mut sink, &mut stream, &local, &metrics).await;
                local.set_live(false);
                metrics.invalidation_channel(false);
                tracing::warn!(
                    reason = why,
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

async fn subscribe(s: &Subscription) -> Result<(PubSubSink, PubSubStream), String> {
    let subscribed = async {
        let (mut sink, stream) = s.client.get_async_pubsub().await?.split();
        sink.subscribe(&s.channel).await?;
        Ok::<_, redis::RedisError>((sink, stream))
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
    sink: &mut PubSubSink,
    stream: &mut PubSubStream,
    local: &LocalCache<V>,
    metrics: &Metrics,
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
            }
        }
    }
}
