//! Fan-out: a run of frames recorded in its group's stream and queued for every member, in one
//! critical section; and the slow-consumer policy.

use std::sync::Arc;

use bytes::Bytes;

use super::{Hub, SHARDS};
use crate::config::SlowPolicy;
use crate::history::Position;
use crate::layer::GroupName;
use crate::metrics::Metrics;
use crate::outbox::{Outbox, Push};
use crate::protocol::{self, CloseCode};

impl Hub {
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

    /// Records `frames` in `group`'s stream (when kept) and queues them for every local member,
    /// in one critical section; returns how many deliveries that was.
    pub(super) fn fan_out(&self, group: &GroupName, frames: &[Bytes]) -> usize {
        let mut guard = self.shard(group.as_str());
        let shard = &mut *guard;
        let mut recorded = 0;
        let (g, positioned) = match self.local_history() {
            Some(cfg) if group.is_user_stream() => {
                let now = self.now();
                let g = shard.group_with_stream(group, now, &self.0.metrics);
                let (positioned, delta) = g.record(frames, now, cfg);
                recorded = delta;
                (&*g, positioned)
            }
            _ => match shard.groups.get(group) {
                Some(g) => (g, Vec::new()),
                None => return 0,
            },
        };
        let delivered =
            self.push_each(&g.plain, frames) + self.push_each(&g.positioned, &positioned);
        self.0.metrics.deliveries.inc_by(delivered as u64);
        if let Some(cfg) = self.local_history() {
            shard.add_bytes(recorded, &self.0.metrics);
            shard.enforce_cap(group, cfg.max_bytes / SHARDS, &self.0.metrics);
        }
        delivered
    }

    /// Queues a frame the layer numbered (`at`; `None`: an event published without a position,
    /// e.g. by Django): as it is to plain members, positioned to `recover=1` members, and into
    /// the hold of those still reading history. Returns how many deliveries that was.
    pub(super) fn fan_out_numbered(
        &self,
        group: &GroupName,
        frame: Bytes,
        at: Option<&Position>,
    ) -> usize {
        let mut shard = self.shard(group.as_str());
        let Some(g) = shard.groups.get_mut(group) else {
            return 0;
        };
        if let Some(p) = at {
            // A skipped offset or a new epoch: the layer lost events (or their history) between
            // two that reached us. Positioned members are caught up from the stream in place.
            let broken = g
                .last
                .as_ref()
                .is_some_and(|l| *l.epoch != *p.epoch || p.offset != l.offset + 1);
            if broken {
                tracing::info!(%group, offset = p.offset, "numbered events skipped; positioned members catch up");
                self.hold_for_catch_up(group, g, "stream_gap");
            }
            g.last = Some(p.clone());
        }
        let wanted = !g.positioned.is_empty() || !g.held.is_empty();
        let numbered = match at {
            Some(p) if wanted => protocol::positioned(&frame, p.offset, &p.epoch),
            _ => frame.clone(),
        };
        // Members whose resume already read this event from the stream (it was on its way here).
        let mut have_it = Vec::new();
        if let Some(p) = at.filter(|_| !g.caught_up_to.is_empty()) {
            g.caught_up_to.retain(|(id, head)| {
                let seen = p.offset <= head.offset;
                if seen {
                    have_it.push(*id);
                }
                seen
            });
        }
        let mut delivered = self.push_each(&g.plain, std::slice::from_ref(&frame));
        for member in g.positioned.iter().filter(|m| !have_it.contains(&m.id())) {
            delivered += self.push_each(
                std::slice::from_ref(member),
                std::slice::from_ref(&numbered),
            );
        }
        for held in &mut g.held {
            if !held.hold(at.map(|p| p.offset), numbered.clone()) {
                Metrics::inc(&self.0.metrics.drops, "hold_full");
                held.out.close(CloseCode::SlowConsumer);
            }
        }
        self.0.metrics.deliveries.inc_by(delivered as u64);
        delivered
    }

    /// Queues `frames` for each of `members`, applying the slow-consumer policy; returns how many
    /// deliveries that was.
    pub(super) fn push_each(&self, members: &[Arc<Outbox>], frames: &[Bytes]) -> usize {
        let mut delivered = 0;
        for member in members {
            let (queued, rest) = member.push_all(frames);
            delivered += queued;
            if rest == Push::Full {
                self.on_full(member, frames.len() - queued);
            }
        }
        delivered
    }

    /// The slow-consumer policy, in one place: `refused` frames did not fit `member`'s queue.
    pub(super) fn on_full(&self, member: &Outbox, refused: usize) {
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
