//! The local hub: who is connected here, in which groups, and fan-out to them.
//!
//! Vocabulary is Channels' (`group_add`, `group_discard`, `group_send`). Each group's member list
//! is an `Arc<Vec<_>>` behind one `std::sync::Mutex`: a send clones the `Arc` and releases the lock
//! before touching any queue, so fan-out to 10k members never blocks joins; a join or leave during
//! a send copies the list once (copy-on-write). The lock is never held across `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::config::SlowPolicy;
use crate::error::Result;
use crate::layer::{ChannelLayer, GroupMessage, GroupName};
use crate::metrics::Metrics;
use crate::outbox::{ConnId, Outbox, Push};
use crate::protocol::{self, CloseCode};

type Members = Arc<Vec<Arc<Outbox>>>;

/// Cheap-clone handle to the hub.
#[derive(Clone)]
pub struct Hub(Arc<Shared>);

struct Shared {
    groups: Mutex<HashMap<GroupName, Members>>,
    layer: Arc<dyn ChannelLayer>,
    policy: SlowPolicy,
    metrics: Arc<Metrics>,
    next_id: AtomicU64,
}

impl Hub {
    /// A hub over `layer`; attaches itself as the layer's inbound handler.
    pub fn new(layer: Arc<dyn ChannelLayer>, policy: SlowPolicy, metrics: Arc<Metrics>) -> Self {
        let hub = Self(Arc::new(Shared {
            groups: Mutex::new(HashMap::new()),
            layer: layer.clone(),
            policy,
            metrics,
            next_id: AtomicU64::new(1),
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

    /// The layer this hub publishes through.
    pub fn layer(&self) -> &Arc<dyn ChannelLayer> {
        &self.0.layer
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> ConnId {
        self.0.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn groups(&self) -> MutexGuard<'_, HashMap<GroupName, Members>> {
        // A panic elsewhere while holding the lock leaves the map consistent (no partial updates
        // span an unwind point), so a poisoned lock is safe to keep using.
        self.0.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a connection to a group; the group's first local member subscribes it on the layer.
    /// Refused (`false`) when the group already has `max_members` local members (0: no limit):
    /// the per-user connection limit, checked under the same lock as the insert so concurrent
    /// handshakes of one user cannot overshoot it.
    pub fn group_add(&self, group: &GroupName, member: Arc<Outbox>, max_members: usize) -> bool {
        let mut groups = self.groups();
        if max_members > 0 && groups.get(group).is_some_and(|m| m.len() >= max_members) {
            return false;
        }
        let members = groups.entry(group.clone()).or_insert_with(|| {
            self.0.metrics.groups.inc();
            self.0.layer.subscribe(group);
            Arc::default()
        });
        Arc::make_mut(members).push(member);
        self.0.metrics.group_members.inc();
        true
    }

    /// Removes a connection from a group; the last local member's leaving unsubscribes it.
    pub fn group_discard(&self, group: &GroupName, id: ConnId) {
        let mut groups = self.groups();
        let Some(members) = groups.get_mut(group) else {
            return;
        };
        let Some(pos) = members.iter().position(|m| m.id() == id) else {
            return;
        };
        Arc::make_mut(members).swap_remove(pos);
        self.0.metrics.group_members.dec();
        if members.is_empty() {
            groups.remove(group);
            self.0.metrics.groups.dec();
            self.0.layer.unsubscribe(group);
        }
    }

    /// Asks every local member to close with `code` (shutdown). The connections are told through
    /// their outboxes rather than by each watching a shared token: a token's waiter list is one
    /// mutex, and polling it on every wake-up of thousands of tasks serialized them.
    pub fn close_all(&self, code: CloseCode) {
        let members: Vec<Members> = self.groups().values().cloned().collect();
        for member in members.iter().flat_map(|m| m.iter()) {
            member.close(code);
        }
    }

    /// Local members of `group` (for tests and diagnostics).
    pub fn group_size(&self, group: &str) -> usize {
        self.groups().get(group).map_or(0, |m| m.len())
    }

    /// Groups with at least one local member.
    pub fn group_count(&self) -> usize {
        self.groups().len()
    }

    /// Sends a Channels group message to every member of `group`, in every process the layer
    /// reaches. At-most-once; sending to an empty group is not an error.
    pub async fn group_send(&self, group: &GroupName, message: &GroupMessage) -> Result<()> {
        self.0.metrics.events_published.inc();
        self.0.layer.publish(group, message).await
    }

    /// [`group_send`](Self::group_send) for each item, in order, in one layer call: the Redis
    /// layers pipeline the batch (one or two round trips per host instead of per item).
    pub async fn group_send_many(&self, items: &[(GroupName, GroupMessage)]) -> Result<()> {
        self.0.metrics.events_published.inc_by(items.len() as u64);
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

    /// Publishes pre-encoded event frames, in order, with a layer that [stays in this
    /// process](ChannelLayer::is_local): what the layer would do with their messages, minus
    /// building them. Counted as published and received, like a layer round trip.
    ///
    /// Consecutive frames for one group (a backend's burst to a user) go to each member as one
    /// run: one lock and at most one wake per member per run. Runs are fanned out in order, so
    /// every connection still sees the frames in the order given.
    pub(crate) fn publish_local<'a>(
        &self,
        frames: impl ExactSizeIterator<Item = (&'a GroupName, Bytes)>,
    ) {
        debug_assert!(self.0.layer.is_local());
        let n = frames.len() as u64;
        self.0.metrics.events_published.inc_by(n);
        self.0.metrics.events_received.inc_by(n);
        let mut run: Vec<Bytes> = Vec::new();
        let mut run_group: Option<&GroupName> = None;
        for (group, frame) in frames {
            if let Some(g) = run_group.filter(|g| *g != group) {
                self.fan_out(g, &run);
                run.clear();
            }
            run_group = Some(group);
            run.push(frame);
        }
        if let Some(g) = run_group {
            self.fan_out(g, &run);
        }
    }

    /// Queues `frames` for every local member of `group`; returns how many deliveries that was.
    fn fan_out(&self, group: &GroupName, frames: &[Bytes]) -> usize {
        let Some(members) = self.groups().get(group).cloned() else {
            return 0;
        };
        let mut delivered = 0;
        for member in members.iter() {
            let (queued, rest) = member.push_all(frames);
            delivered += queued;
            if rest == Push::Full {
                self.on_full(member, frames.len() - queued);
            }
        }
        self.0.metrics.deliveries.inc_by(delivered as u64);
        delivered
    }

    /// The slow-consumer policy, in one place: `refused` frames did not fit `member`'s queue.
    fn on_full(&self, member: &Outbox, refused: usize) {
        let m = &self.0.metrics;
        let refused = refused as u64;
        m.queue_full.inc_by(refused);
        match self.0.policy {
            SlowPolicy::Close => {
                if !member.is_closing() {
                    tracing::info!(conn = member.id(), "closing slow consumer");
                }
                Metrics::inc_by(&m.drops, "slow_close", refused);
                member.close(CloseCode::SlowConsumer);
            }
            SlowPolicy::DropNewest => Metrics::inc_by(&m.drops, "queue_full", refused),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::MemoryLayer;
    use crate::outbox::Limits;
    use std::collections::VecDeque;
    use std::task::{Context, Poll, Waker};

    fn hub(policy: SlowPolicy) -> Hub {
        Hub::new(
            Arc::new(MemoryLayer::new()),
            policy,
            Arc::new(Metrics::new()),
        )
    }

    fn member(hub: &Hub, group: &GroupName, max_frames: usize) -> Arc<Outbox> {
        let limits = Limits {
            max_frames,
            max_bytes: 1 << 20,
        };
        let out = Arc::new(Outbox::new(hub.next_conn_id(), limits));
        assert!(hub.group_add(group, out.clone(), 0));
        out
    }

    fn queued(out: &Outbox) -> Vec<Bytes> {
        let mut batch = VecDeque::new();
        let mut cx = Context::from_waker(Waker::noop());
        match out.poll_take(&mut cx, &mut batch, 0) {
            Poll::Ready(_) => batch.into_iter().collect(),
            Poll::Pending => Vec::new(),
        }
    }

    #[test]
    fn runs_of_one_group_keep_the_order_given() {
        let hub = hub(SlowPolicy::Close);
        let (g1, g2) = (GroupName::new("g1").unwrap(), GroupName::new("g2").unwrap());
        let (x1, x2, y) = (
            member(&hub, &g1, 8),
            member(&hub, &g1, 8),
            member(&hub, &g2, 8),
        );
        // A member of both groups sees the frames exactly in the order published.
        let both = member(&hub, &g1, 8);
        assert!(hub.group_add(&g2, both.clone(), 0));
        let f = |s: &'static str| Bytes::from_static(s.as_bytes());
        let items = [(&g1, f("a")), (&g1, f("b")), (&g2, f("c")), (&g1, f("d"))];
        hub.publish_local(items.into_iter());
        for x in [&x1, &x2] {
            assert_eq!(queued(x), [f("a"), f("b"), f("d")]);
        }
        assert_eq!(queued(&y), [f("c")]);
        assert_eq!(queued(&both), [f("a"), f("b"), f("c"), f("d")]);
        let m = &hub.0.metrics;
        assert_eq!(m.deliveries.get(), 11);
        assert_eq!(m.events_published.get(), 4);
        assert_eq!(m.events_received.get(), 4);
    }

    #[test]
    fn a_run_past_the_bound_counts_every_refused_frame() {
        let hub = hub(SlowPolicy::DropNewest);
        let g = GroupName::new("g").unwrap();
        let (small, roomy) = (member(&hub, &g, 2), member(&hub, &g, 8));
        let frames: Vec<Bytes> = (0..5u8).map(|i| Bytes::from(vec![i])).collect();
        hub.publish_local(frames.iter().map(|f| (&g, f.clone())));
        assert_eq!(queued(&small), frames[..2]);
        assert_eq!(queued(&roomy), frames);
        let m = &hub.0.metrics;
        assert_eq!(m.deliveries.get(), 7);
        assert_eq!(m.queue_full.get(), 3);
        assert!(m
            .render()
            .contains(r#"courier_drops_total{reason="queue_full"} 3"#));
        // A closed queue takes nothing and says so.
        small.close(CloseCode::SlowConsumer);
        assert_eq!(small.push_all(&frames), (0, Push::Closed));
    }
}
