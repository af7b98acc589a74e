//! The local hub: who is connected here, in which groups, fan-out to them, and each user stream's
//! positions and history.
//!
//! Vocabulary is Channels' (`group_add`, `group_discard`, `group_send`). Groups live in
//! [`SHARDS`] maps, each behind one `std::sync::Mutex`; a group's shard lock is its stream's one
//! critical section: a publish takes the next offsets, records the events and pushes them to every
//! member under it, so concurrent publishers can never deliver offset 6 before 5, and a joining
//! client's position (or replay) and its first live event cannot cross. A push is a short,
//! non-blocking queue append; the lock is never held across `.await`.
//!
//! Streams of `user_*` groups (the groups clients join) are kept here when the hub sees every
//! publish of the process (a layer that [stays in this process](ChannelLayer::is_local): the
//! memory layer), or by a layer that [keeps history](ChannelLayer::keeps_history) (the Redis
//! layers): events then arrive numbered, a resume reads the layer's stream (`join`), and members
//! that missed events on their way here are caught up from it in place (`catch_up`). Otherwise
//! frames carry no positions and a `recover=1` client is served as a plain one.

mod catch_up;
mod fanout;
mod join;
mod shard;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_layer;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use serde_json::Value;

use crate::config::{HistoryConfig, SlowPolicy};
use crate::error::Result;
use crate::history::Position;
use crate::layer::{ChannelLayer, GroupMessage, GroupName};
use crate::metrics::Metrics;
use crate::outbox::{ConnId, Outbox};
use crate::protocol::{self, CloseCode};
use crate::trace::{ByteCount, Trace};

use shard::{Group, Shard};

/// Shards of the group map: a publish or join locks one, so a fan-out to a large group holds up
/// only the groups that hash beside it.
pub const SHARDS: usize = 64;

/// Cheap-clone handle to the hub.
#[derive(Clone)]
pub struct Hub(Arc<Shared>);

struct Shared {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    layer: Arc<dyn ChannelLayer>,
    policy: SlowPolicy,
    metrics: Arc<Metrics>,
    next_id: AtomicU64,
    /// Who keeps user streams.
    streams: Streams,
    /// The zero of the hub's second clock (history ages and idle times).
    started: Instant,
    /// The publish trace, when on.
    trace: OnceLock<Arc<Trace>>,
    /// Groups whose positioned members wait to be caught up from the layer's stream.
    catch_ups: catch_up::CatchUps,
}

/// Who keeps the user streams' positions and history.
pub(crate) enum Streams {
    /// Nobody: frames carry no positions.
    Off,
    /// This hub, within these bounds (the layer stays in the process: it sees every publish).
    Local(HistoryConfig),
    /// The layer, shared by every process (events arrive with their position).
    Layer,
}

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The group already has `max_members` local members.
    Full,
}

impl Hub {
    /// A hub over `layer`; attaches itself as the layer's inbound handler. With `history`, and a
    /// layer that stays in this process, it keeps user streams within those bounds.
    pub fn new(
        layer: Arc<dyn ChannelLayer>,
        policy: SlowPolicy,
        metrics: Arc<Metrics>,
        history: Option<HistoryConfig>,
    ) -> Self {
        let streams = match history {
            Some(bounds) if layer.is_local() => Streams::Local(bounds),
            Some(_) if layer.keeps_history() => Streams::Layer,
            _ => Streams::Off,
        };
        let hub = Self(Arc::new(Shared {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            layer: layer.clone(),
            policy,
            metrics,
            next_id: AtomicU64::new(1),
            streams,
            started: Instant::now(),
            trace: OnceLock::new(),
            catch_ups: catch_up::CatchUps::new(),
        }));
        // Weak: the layer must not keep the hub (and every queue) alive.
        let weak = Arc::downgrade(&hub.0);
        layer.attach(Arc::new(
            move |group: &GroupName, message: &GroupMessage, at: Option<&Position>| {
                if let Some(shared) = weak.upgrade() {
                    Hub(shared).deliver(group, message, at);
                }
            },
        ));
        hub
    }

    /// Records what is published from now on in `trace` (set once, by the app state).
    pub(crate) fn attach_trace(&self, trace: Arc<Trace>) {
        let _ = self.0.trace.set(trace);
    }

    /// The publish trace, when on (its writer task is the server's).
    pub(crate) fn trace_handle(&self) -> Option<Arc<Trace>> {
        self.0.trace.get().cloned()
    }

    /// Traces one published event of type `kind` whose data is `bytes` long.
    pub(crate) fn trace(&self, group: &GroupName, kind: &str, bytes: usize) {
        if let Some(t) = self.0.trace.get() {
            t.record(group, kind, bytes, &self.0.metrics);
        }
    }

    /// Traces Channels group messages as published.
    fn trace_messages<'a>(&self, items: impl Iterator<Item = (&'a GroupName, &'a GroupMessage)>) {
        if self.0.trace.get().is_none() {
            return;
        }
        for (group, message) in items {
            let Ok(kind) = protocol::event_kind(message) else {
                continue;
            };
            let mut size = ByteCount::default();
            // Counting into a sink that takes everything cannot fail.
            let _ = serde_json::to_writer(&mut size, message.get("data").unwrap_or(&Value::Null));
            self.trace(group, kind, size.0);
        }
    }

    /// The layer this hub publishes through.
    pub fn layer(&self) -> &Arc<dyn ChannelLayer> {
        &self.0.layer
    }

    /// Whether this hub keeps positions and history (`recover=1` is served).
    pub fn keeps_history(&self) -> bool {
        !matches!(self.0.streams, Streams::Off)
    }

    /// Whether the layer keeps the user streams (positioned members are caught up from it after
    /// an outage: [`run_catch_ups`](Self::run_catch_ups) must run).
    pub(crate) fn streams_in_layer(&self) -> bool {
        matches!(self.0.streams, Streams::Layer)
    }

    /// The bounds of the streams this hub keeps itself (`None`: it keeps none).
    fn local_history(&self) -> Option<&HistoryConfig> {
        match &self.0.streams {
            Streams::Local(bounds) => Some(bounds),
            _ => None,
        }
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> ConnId {
        self.0.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Seconds since the hub started (history ages).
    fn now(&self) -> u32 {
        u32::try_from(self.0.started.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    fn shard(&self, group: &str) -> MutexGuard<'_, Shard> {
        let i = self.0.hasher.hash_one(group) as usize % SHARDS;
        // No update spans an unwind point, so a poisoned lock still guards a consistent map.
        self.0.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn shards(&self) -> impl Iterator<Item = MutexGuard<'_, Shard>> {
        self.0
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Whether `group`'s stream is kept here.
    fn stream_kept(&self, group: &GroupName) -> bool {
        self.local_history().is_some() && group.is_user_stream()
    }

    /// Removes a connection from a group; the last local member's leaving unsubscribes it. The
    /// group's stream stays (its clients come back to it).
    pub fn group_discard(&self, group: &GroupName, id: ConnId) {
        let mut shard = self.shard(group.as_str());
        let Some(g) = shard.groups.get_mut(group) else {
            return;
        };
        if !g.remove(id) {
            return;
        }
        self.0.metrics.group_members.dec();
        if !g.has_members() {
            if g.stream.is_none() {
                shard.groups.remove(group);
            }
            self.0.metrics.groups.dec();
            self.0.layer.unsubscribe(group);
        }
    }

    /// Asks every local member to close with `code` (shutdown). The connections are told through
    /// their outboxes rather than by each watching a shared token: a token's waiter list is one
    /// mutex, and polling it on every wake-up of thousands of tasks serialized them.
    pub fn close_all(&self, code: CloseCode) {
        let mut members = Vec::new();
        for shard in self.shards() {
            members.extend(shard.groups.values().flat_map(Group::members).cloned());
        }
        for member in members {
            member.close(code);
        }
    }

    /// Asks every local member of `group` to close with `code` (a user deactivated).
    pub fn close_group(&self, group: &str, code: CloseCode) {
        let members: Vec<Arc<Outbox>> = self
            .shard(group)
            .groups
            .get(group)
            .map(|g| g.members().cloned().collect())
            .unwrap_or_default();
        for member in members {
            member.close(code);
        }
    }

    /// Local members of `group` (for tests and diagnostics).
    pub fn group_size(&self, group: &str) -> usize {
        self.shard(group).groups.get(group).map_or(0, Group::len)
    }

    /// Groups with at least one local member.
    pub fn group_count(&self) -> usize {
        self.shards()
            .map(|s| s.groups.values().filter(|g| g.has_members()).count())
            .sum()
    }

    /// The names of the groups with local members (the user re-check walks them).
    pub fn member_groups(&self) -> Vec<GroupName> {
        let mut names = Vec::new();
        for shard in self.shards() {
            let with_members = shard.groups.iter().filter(|(_, g)| g.has_members());
            names.extend(with_members.map(|(name, _)| name.clone()));
        }
        names
    }

    /// Drops history past its age and positions idle past their TTL, one shard at a time (a
    /// background task calls this every few seconds; appends enforce the byte bounds themselves).
    pub fn sweep_history(&self) {
        let Some(cfg) = self.local_history() else {
            return;
        };
        let now = self.now();
        for i in 0..SHARDS {
            let mut shard = self.0.shards[i].lock().unwrap_or_else(|p| p.into_inner());
            shard.sweep(now, cfg, &self.0.metrics);
        }
    }

    /// Sends a Channels group message to every member of `group`, in every process the layer
    /// reaches. At-most-once; sending to an empty group is not an error.
    pub async fn group_send(&self, group: &GroupName, message: &GroupMessage) -> Result<()> {
        self.0.metrics.events_published.inc();
        self.trace_messages(std::iter::once((group, message)));
        self.0.layer.publish(group, message).await
    }

    /// [`group_send`](Self::group_send) for each item, in order, in one layer call: the Redis
    /// layers pipeline the batch (one or two round trips per host instead of per item).
    pub async fn group_send_many(&self, items: &[(GroupName, GroupMessage)]) -> Result<()> {
        self.0.metrics.events_published.inc_by(items.len() as u64);
        self.trace_messages(items.iter().map(|(g, m)| (g, m)));
        self.0.layer.publish_many(items).await
    }

    /// Fans a message out to this process's members of `group`. Returns how many queues took it.
    ///
    /// The frame is encoded once; every recipient gets a clone of the same bytes.
    pub fn deliver_local(&self, group: &GroupName, message: &GroupMessage) -> usize {
        self.deliver(group, message, None)
    }

    /// [`deliver_local`](Self::deliver_local) of a message the layer numbered (`at`), if any.
    fn deliver(&self, group: &GroupName, message: &GroupMessage, at: Option<&Position>) -> usize {
        self.0.metrics.events_received.inc();
        match protocol::event_frame(message) {
            Ok(frame) if matches!(self.0.streams, Streams::Layer) => {
                if at.is_none() && crate::layer::is_outage_signal(message) {
                    return self.after_outage(group, frame);
                }
                self.fan_out_numbered(group, frame, at)
            }
            Ok(frame) => self.fan_out(group, std::slice::from_ref(&frame)),
            Err(e) => {
                tracing::warn!(%group, error = %e, "dropping group message that is not a valid event");
                Metrics::inc(&self.0.metrics.layer_errors, "bad_event");
                0
            }
        }
    }
}
