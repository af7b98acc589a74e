//! `RedisPubSubLayer`: wire-compatible with channels_redis's `RedisPubSubChannelLayer`.
//!
//! A group is the Redis pub/sub channel `{prefix}__group__{group}` on the host channels_redis's
//! consistent hash picks for that channel, and a message is the serialized Channels message,
//! nothing else (PROTOCOL.md §5): Django's `group_send` is one `PUBLISH`, and so is courier's.
//! Membership stays in process memory; one subscriber task per host SUBSCRIBEs the groups on that
//! host while the hub has a local member of them.
//!
//! # History
//! Started [with history](RedisPubSubLayer::start_with_history), courier's own publishes to
//! `user_*` groups go through the history script (`wire::history`): one sequencer per stream in
//! Redis, the events kept in a Redis Stream beside the channel, the event published as
//! channels_redis would and its position in a note just before it on a courier-only channel,
//! which every courier process subscribes beside the group's — so a client resumes on any
//! courier process, and Django consumers of the group still read every event. Events Django
//! publishes with channels_redis have no note and are delivered without a position.
//!
//! # Failures
//! Each host's task reconnects with backoff on its own. While a host is away the hub keeps serving
//! its local clients (publishes to that host's groups fail with
//! [`Error::Layer`](crate::Error::Layer)); after a
//! reconnect the task resubscribes its groups and sends each of them a `resync` message, since
//! Redis pub/sub kept nothing for us. Groups on the other hosts never notice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::conn::{self, broken, CHUNK};
use super::health::LayerMetrics;
use super::reconnect::Reconnect;
use super::resync::send_resync;
use super::wire::history::parse_note;
use super::wire::send::{Flavor, Sender};
use super::wishes::Wishes;
use crate::config::{HistoryConfig, RedisConfig};
use crate::error::Result;
use crate::history::Position;
use crate::layer::{ChannelLayer, GroupMessage, GroupName, Inbound, StreamHistory};
use crate::metrics::Metrics;

/// How often an idle subscriber pings, so a silently dead connection is noticed.
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// Scope: every process (courier or Django with channels_redis's pub/sub layer) on the same hosts
/// (same order) with the same prefix. At-most-once: Redis pub/sub drops what is published while
/// we are disconnected.
pub struct RedisPubSubLayer {
    shared: Arc<Shared>,
    /// Stops the subscriber tasks when the layer is dropped.
    _stop: DropGuard,
}

struct Shared {
    /// `{prefix}__group__`: what channel names start with.
    channel_prefix: String,
    /// `{prefix}__courier__`: what position-note channels start with (subscribed only with
    /// history, for `user_*` groups).
    note_prefix: Option<String>,
    /// Publishes, and holds the codec the subscribers decode with.
    sender: Sender,
    inbound: OnceLock<Inbound>,
    metrics: LayerMetrics,
    /// What the hub wants subscribed, per host.
    wishes: Vec<Wishes>,
}

impl RedisPubSubLayer {
    /// Starts one subscriber task per host. Does not wait for Redis: an unreachable host is
    /// retried with backoff and logged, so the server still starts and serves local clients.
    pub fn start(config: &RedisConfig) -> Result<Self> {
        Self::start_with_history(config, None)
    }

    /// [`start`](Self::start), keeping user-stream history in Redis within `history`'s bounds.
    pub fn start_with_history(
        config: &RedisConfig,
        history: Option<&HistoryConfig>,
    ) -> Result<Self> {
        let clients = conn::clients(&config.urls)?;
        let mut sender = Sender::new(Flavor::PubSub, config)?;
        if let Some(bounds) = history {
            sender = sender.with_history(bounds);
        }
        let shared = Arc::new(Shared {
            channel_prefix: sender.names().channel_prefix(),
            note_prefix: sender.keeps_history().then(|| sender.names().note_prefix()),
            sender,
            inbound: OnceLock::new(),
            metrics: LayerMetrics::new(clients.len()),
            wishes: clients.iter().map(|_| Wishes::default()).collect(),
        });
        let stop = CancellationToken::new();
        for (host, client) in clients.into_iter().enumerate() {
            tokio::spawn(run(shared.clone(), host, client, stop.clone()));
        }
        Ok(Self {
            shared,
            _stop: stop.drop_guard(),
        })
    }

    fn wishes_of(&self, group: &GroupName) -> &Wishes {
        &self.shared.wishes[self.shared.sender.host_of(group)]
    }

    /// Counts a failed publish; the error goes to the caller.
    fn counted<T>(&self, sent: Result<T>) -> Result<()> {
        sent.map(drop)
            .inspect_err(|_| self.shared.metrics.error("publish"))
    }
}

impl ChannelLayer for RedisPubSubLayer {
    fn name(&self) -> &'static str {
        "redis-pubsub"
    }

    fn attach(&self, inbound: Inbound) {
        let _ = self.shared.inbound.set(inbound);
    }

    fn attach_metrics(&self, metrics: Arc<Metrics>) {
        self.shared.metrics.attach(metrics);
    }

    fn keeps_history(&self) -> bool {
        self.shared.sender.keeps_history()
    }

    fn read_stream<'a>(
        &'a self,
        group: &'a GroupName,
        after: Option<u64>,
    ) -> BoxFuture<'a, Result<StreamHistory>> {
        Box::pin(self.shared.sender.read_stream(group, after))
    }

    fn subscription_live<'a>(&'a self, group: &'a GroupName) -> BoxFuture<'a, ()> {
        Box::pin(self.wishes_of(group).live(group))
    }

    fn subscribe(&self, group: &GroupName) {
        self.wishes_of(group).set(group, true);
    }

    fn unsubscribe(&self, group: &GroupName) {
        self.wishes_of(group).set(group, false);
    }

    fn publish<'a>(
        &'a self,
        group: &'a GroupName,
        message: &'a GroupMessage,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.counted(self.shared.sender.send_one(group, message).await) })
    }

    fn publish_many<'a>(
        &'a self,
        items: &'a [(GroupName, GroupMessage)],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.counted(self.shared.sender.send_many(items).await) })
    }
}

/// Host `host`'s subscriber task: connect, subscribe what is wanted there, forward messages;
/// reconnect with backoff. Ends only when the layer is dropped.
async fn run(shared: Arc<Shared>, host: usize, client: redis::Client, stop: CancellationToken) {
    let wishes = &shared.wishes[host];
    let mut link = Reconnect::new("redis-pubsub subscriber", host, &shared.metrics, &stop);
    while let Some((pubsub, resumed)) = link.next(|| client.get_async_pubsub()).await {
        let (mut sink, mut stream) = pubsub.split();
        let mut subscribed = wishes.snapshot();
        // A position note waiting for its event, by group (the next message on that group's
        // channel; see `wire::history`).
        let mut notes = HashMap::new();
        let mut live = change(&shared, &mut sink, &subscribed, true).await;
        if live.is_ok() {
            wishes.mark_live(&subscribed, true);
            if resumed {
                tracing::info!(
                    host,
                    groups = subscribed.len(),
                    "redis-pubsub: reconnected; sending resync"
                );
                send_resync(shared.inbound.get(), &subscribed);
            }
            live = session(
                &shared,
                wishes,
                &mut sink,
                &mut stream,
                &mut subscribed,
                &mut notes,
                &stop,
            )
            .await;
        }
        wishes.clear_live();
        match live {
            Ok(()) => return,
            Err(e) => link.lost(&e),
        }
    }
}

/// One connection's life. `Ok` means stopped; `Err` means the connection broke.
async fn session(
    shared: &Shared,
    wishes: &Wishes,
    sink: &mut PubSubSink,
    stream: &mut PubSubStream,
    subscribed: &mut HashSet<GroupName>,
    notes: &mut HashMap<GroupName, Position>,
    stop: &CancellationToken,
) -> redis::RedisResult<()> {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            // Cancel-safe: the stream is a channel receiver; nothing is lost if another arm wins.
            msg = stream.next() => match msg {
                Some(msg) => deliver(shared, &msg, notes),
                None => return Err(broken("subscriber connection closed")),
            },
            _ = wishes.changed() => reconcile(shared, wishes, sink, subscribed).await?,
            _ = ping.tick() => {
                let pong = tokio::time::timeout(conn::RESPONSE_TIMEOUT, sink.ping::<redis::Value>()).await;
                pong.map_err(|_| broken("ping timed out"))??;
            }
        }
    }
}

/// Applies the hub's changed wishes: SUBSCRIBE the newly wanted, UNSUBSCRIBE the abandoned.
async fn reconcile(
    shared: &Shared,
    wishes: &Wishes,
    sink: &mut PubSubSink,
    subscribed: &mut HashSet<GroupName>,
) -> redis::RedisResult<()> {
    let mut add = HashSet::new();
    let mut remove = HashSet::new();
    for (group, wanted) in wishes.take_changes() {
        match (wanted, subscribed.contains(&group)) {
            (true, false) => drop(add.insert(group)),
            (false, true) => drop(remove.insert(group)),
            _ => {}
        }
    }
    // Notes are kept across (un)subscribes: a group's two channels change in one command and a
    // note and its event are published by one script, so this connection gets both or neither.
    // (Clearing a note here once sent its event on unnumbered — and a resume then got it twice,
    // from the stream and from its hold.)
    if !add.is_empty() {
        change(shared, sink, &add, true).await?;
        wishes.mark_live(&add, true);
        subscribed.extend(add);
    }
    if !remove.is_empty() {
        wishes.mark_live(&remove, false);
        change(shared, sink, &remove, false).await?;
        subscribed.retain(|g| !remove.contains(g));
    }
    Ok(())
}

/// SUBSCRIBEs (or UNSUBSCRIBEs) `groups` in chunks, each with a response deadline.
async fn change(
    shared: &Shared,
    sink: &mut PubSubSink,
    groups: &HashSet<GroupName>,
    on: bool,
) -> redis::RedisResult<()> {
    let groups: Vec<&GroupName> = groups.iter().collect();
    // Up to two channels a group, and a group's two always in one command: a note channel
    // subscribed without its group channel (or the reverse) would pair notes with the wrong events.
    for chunk in groups.chunks(CHUNK / 2) {
        let mut names: Vec<String> = Vec::with_capacity(chunk.len() * 2);
        for g in chunk {
            if let Some(notes) = shared.note_prefix.as_ref().filter(|_| g.is_user_stream()) {
                names.push(format!("{notes}{g}"));
            }
            names.push(format!("{}{g}", shared.channel_prefix));
        }
        let chunk = &names;
        let call = async {
            if on {
                sink.subscribe(chunk).await
            } else {
                sink.unsubscribe(chunk).await
            }
        };
        tokio::time::timeout(conn::RESPONSE_TIMEOUT, call)
            .await
            .map_err(|_| broken("(un)subscribe timed out"))??;
    }
    Ok(())
}

/// Decodes one published payload and hands it to the hub, with the position its note gave; a
/// note is kept for its event. Bad payloads are counted, not fatal.
fn deliver(shared: &Shared, msg: &redis::Msg, notes: &mut HashMap<GroupName, Position>) {
    let channel = msg.get_channel_name();
    if let Some(name) = shared
        .note_prefix
        .as_deref()
        .and_then(|p| channel.strip_prefix(p))
    {
        let Some(group) = GroupName::new(name) else {
            return;
        };
        match parse_note(msg.get_payload_bytes()) {
            Ok(position) => drop(notes.insert(group, position)),
            Err(e) => {
                shared.metrics.error("decode");
                tracing::warn!(%group, error = e, "redis-pubsub: dropping a bad position note");
            }
        }
        return;
    }
    let Some(name) = channel.strip_prefix(shared.channel_prefix.as_str()) else {
        return;
    };
    let Some(group) = GroupName::new(name) else {
        return;
    };
    let position = notes.remove(&group);
    match shared.sender.codec().decode(msg.get_payload_bytes()) {
        Ok(message) => {
            if let Some(inbound) = shared.inbound.get() {
                inbound(&group, &message, position.as_ref());
            }
        }
        Err(e) => {
            shared.metrics.error("decode");
            tracing::warn!(%group, error = %e, "redis-pubsub: dropping a payload that does not decode");
        }
    }
}
