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
//! Streams are kept when the hub sees every publish of the process (a layer that [stays in this
//! process](ChannelLayer::is_local): the memory layer), for `user_*` groups only (the groups
//! clients join). Other layers carry frames without positions; a `recover=1` client there is
//! served as a plain one (README: history on Redis layers is not there yet).

mod fanout;
mod shard;
#[cfg(test)]
mod tests;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;

use crate::config::{HistoryConfig, SlowPolicy};
use crate::error::Result;
use crate::history::{Position, Recover, Resume};
use crate::layer::{ChannelLayer, GroupMessage, GroupName};
use crate::metrics::Metrics;
use crate::outbox::{ConnId, Outbox, Push};
use crate::protocol::{self, CloseCode, ResyncReason};
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
    /// History bounds, when this hub keeps streams.
    history: Option<HistoryConfig>,
    /// The zero of the hub's second clock (history ages and idle times).
    started: Instant,
    /// The publish trace, when on.
    trace: OnceLock<Arc<Trace>>,
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
        let history = history.filter(|_| layer.is_local());
        let hub = Self(Arc::new(Shared {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            layer: layer.clone(),
            policy,
            metrics,
            next_id: AtomicU64::new(1),
            history,
            started: Instant::now(),
            trace: OnceLock::new(),
        }));
        // Weak: the layer must not keep the hub (and every queue) alive.
        let weak = Arc::downgrade(&hub.0);
        layer.attach(Arc::new(
            move |group: &GroupName, message: &GroupMessage| {
                if let Some(shared) = weak.upgrade() {
                    Hub(shared).deliver_local(group, message);
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
        self.0.history.is_some()
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

    /// Adds a connection to a group (the group's first local member subscribes it on the layer).
    /// Refused (`false`) when the group already has `max_members` local members (0: no limit).
    pub fn group_add(&self, group: &GroupName, member: Arc<Outbox>, max_members: usize) -> bool {
        self.join(group, member, max_members, &Recover::No, |_| None)
            .is_ok()
    }

    /// Adds a connection to a group, in one critical section with its first frames: `welcome`
    /// (given the position the connection starts from, on a positioned join), then on a resume the
    /// replay or the `resync` — so no live event can come before them or be missed between.
    ///
    /// The per-user connection limit (`max_members`, 0: none) is checked under the same lock, so
    /// concurrent handshakes of one user cannot overshoot it. A positioned join on a hub without
    /// history is served as a plain one.
    pub fn join(
        &self,
        group: &GroupName,
        member: Arc<Outbox>,
        max_members: usize,
        recover: &Recover,
        welcome: impl FnOnce(Option<&Position>) -> Option<Bytes>,
    ) -> std::result::Result<(), Refused> {
        let now = self.now();
        let mut shard = self.shard(group.as_str());
        let positioned = recover.positioned() && self.stream_kept(group);
        if max_members > 0
            && shard
                .groups
                .get(group)
                .is_some_and(|g| g.len() >= max_members)
        {
            return Err(Refused::Full);
        }
        let (first, replay) = if positioned {
            let history = self.0.history.as_ref().expect("checked by stream_kept");
            let g = shard.group_with_stream(group, now, &self.0.metrics);
            let stream = g.stream.as_mut().expect("just made");
            stream.touched = now;
            let head = stream.head();
            match recover {
                Recover::Since(from) => {
                    let outcome = match stream.resume(from, now, history) {
                        Resume::Replay(frames) => {
                            let m = &self.0.metrics;
                            let result = if frames.is_empty() {
                                "current"
                            } else {
                                "replayed"
                            };
                            Metrics::inc(&m.resumes, result);
                            m.replayed_events.inc_by(frames.len() as u64);
                            frames
                        }
                        Resume::Resync(reason) => self.resync(reason, &head),
                    };
                    (welcome(Some(from)), outcome)
                }
                Recover::Unusable => (
                    welcome(Some(&head)),
                    self.resync(ResyncReason::EpochChanged, &head),
                ),
                _ => (welcome(Some(&head)), Vec::new()),
            }
        } else {
            (welcome(None), Vec::new())
        };
        for frames in [first.as_slice(), replay.as_slice()] {
            let (_, rest) = member.push_all(frames);
            // The configuration keeps a full replay within an empty queue; should it not fit
            // anyway, the member is slow like any other.
            if rest == Push::Full {
                self.on_full(&member, 1);
            }
        }
        let g = shard.groups.entry(group.clone()).or_default();
        if !g.has_members() {
            self.0.metrics.groups.inc();
            self.0.layer.subscribe(group);
        }
        g.add(member, positioned);
        self.0.metrics.group_members.inc();
        Ok(())
    }

    /// The `resync` frame a join gets, counted.
    fn resync(&self, reason: ResyncReason, head: &Position) -> Vec<Bytes> {
        Metrics::inc(&self.0.metrics.resumes, reason.as_str());
        vec![protocol::resync(reason, head)]
    }

    /// Whether `group`'s stream is kept here.
    fn stream_kept(&self, group: &GroupName) -> bool {
        self.0.history.is_some() && group.is_user_stream()
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
        let Some(cfg) = &self.0.history else { return };
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
        self.0.metrics.events_received.inc();
        match protocol::event_frame(message) {
            Ok(frame) => self.fan_out(group, std::slice::from_ref(&frame)),
            Err(e) => {
                tracing::warn!(%group, error = %e, "dropping group message that is not a valid event");
                Metrics::inc(&self.0.metrics.layer_errors, "bad_event");
                0
            }
        }
    }
}
