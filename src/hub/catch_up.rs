//! Catching positioned members up in place when the layer lost events on their way here.
//!
//! A broker outage, or a numbered event that skips an offset, means this process missed events
//! that the layer's stream still has. Rather than close the `recover=1` members to resume by
//! reconnecting, their live events are held, the stream is read after the position each member
//! has, and they get the missed events — exactly once, in order — then go on live. Only when the
//! stream cannot cover the gap (trimmed, a new epoch, unreadable) are they told `resync`, with the
//! stream's position. Plain members get the `broker_reconnected` frame as before.
//!
//! The reads run on one task (started by `server::run`, [`Hub::run_catch_ups`]), a bounded
//! number at a time, fed by a bounded queue of groups: past it, members are closed 4008 and
//! resume by reconnecting, as before.

use std::sync::Mutex;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::join::unavailable_frame;
use super::shard::{Group, Held, HeldFor};
use super::Hub;
use crate::history::{resume_from, Position, Resume};
use crate::layer::GroupName;
use crate::metrics::Metrics;
use crate::outbox::ConnId;
use crate::protocol::{CloseCode, ResyncReason};

/// Groups waiting for a catch-up. A broker outage queues every local user group with positioned
/// members at once; a queue past this closes them 4008 (they resume by reconnecting).
const QUEUED: usize = 16_384;
/// Catch-up reads in flight at once (each is one stream read on the layer).
const CONCURRENT: usize = 16;

/// The queue of groups to catch up, and its receiving end until the task takes it.
pub(super) struct CatchUps {
    tx: mpsc::Sender<GroupName>,
    rx: Mutex<Option<mpsc::Receiver<GroupName>>>,
}

impl CatchUps {
    pub(super) fn new() -> Self {
        let (tx, rx) = mpsc::channel(QUEUED);
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl Hub {
    /// Runs the queued catch-ups until the task is stopped (`server::run` owns it). Only the
    /// first call takes the queue; a second returns at once.
    pub async fn run_catch_ups(&self) {
        let rx = self.0.catch_ups.rx.lock().ok().and_then(|mut rx| rx.take());
        let Some(rx) = rx else { return };
        let groups = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|group| (group, rx))
        });
        groups
            .for_each_concurrent(CONCURRENT, |group| async move {
                self.catch_up(&group).await;
            })
            .await;
    }

    /// The layer's outage signal for `group`: its positioned members are caught up from the
    /// stream; plain members get the `resync` `frame`. Returns how many deliveries that was.
    pub(super) fn after_outage(&self, group: &GroupName, frame: Bytes) -> usize {
        let mut shard = self.shard(group.as_str());
        let Some(g) = shard.groups.get_mut(group) else {
            return 0;
        };
        self.hold_for_catch_up(group, g, "broker_resync");
        // The next numbered event follows events this process may never have seen.
        g.last = None;
        let delivered = self.push_each(&g.plain, std::slice::from_ref(&frame));
        self.0.metrics.deliveries.inc_by(delivered as u64);
        delivered
    }

    /// `g` (named `group`) missed events (`why`): its positioned members are held to be caught
    /// up from the position each has, and the group is queued. Members still joining are closed
    /// 4008 — their read may have passed before the loss — and resume by reconnecting.
    pub(super) fn hold_for_catch_up(&self, group: &GroupName, g: &mut Group, why: &'static str) {
        for joining in g.held.iter().filter(|h| h.why == HeldFor::Join) {
            Metrics::inc(&self.0.metrics.drops, why);
            joining.out.close(CloseCode::SlowConsumer);
        }
        if g.positioned.is_empty() {
            return;
        }
        if self.0.catch_ups.tx.try_send(group.clone()).is_err() {
            for member in &g.positioned {
                Metrics::inc(&self.0.metrics.drops, "catch_up_full");
                member.close(CloseCode::SlowConsumer);
            }
            return;
        }
        Metrics::inc(&self.0.metrics.catch_ups, why);
        let mut caught_up_to = std::mem::take(&mut g.caught_up_to);
        for member in g.positioned.drain(..) {
            // A member that resumed from the stream has everything up to its read's head, which
            // may be past the last event that arrived here.
            let read_to = caught_up_to.iter().position(|(id, _)| *id == member.id());
            let from = match read_to {
                Some(i) => Some(caught_up_to.swap_remove(i).1),
                None => g.last.clone(),
            };
            g.held.push(Held::new(member, HeldFor::CatchUp(from)));
        }
    }

    /// Reads `group`'s stream once for every member held for a catch-up and makes each live with
    /// what it missed (or one `resync`). Members held after the read began wait for their own.
    pub(super) async fn catch_up(&self, group: &GroupName) {
        let (members, after) = {
            let shard = self.shard(group.as_str());
            let Some(g) = shard.groups.get(group) else {
                return;
            };
            let members: Vec<(ConnId, Option<Position>)> = g
                .held
                .iter()
                .filter_map(|h| match &h.why {
                    HeldFor::CatchUp(from) => Some((h.out.id(), from.clone())),
                    HeldFor::Join => None,
                })
                .collect();
            let after = members
                .iter()
                .filter_map(|(_, f)| f.as_ref())
                .map(|f| f.offset)
                .min();
            (members, after)
        };
        if members.is_empty() {
            return;
        }
        let read = self.read_layer(group, after).await;
        let head = read.as_ref().ok().map(|s| s.head.clone());
        let mut shard = self.shard(group.as_str());
        let Some(g) = shard.groups.get_mut(group) else {
            return;
        };
        for (id, from) in members {
            let Some(held) = g.take_held(id) else {
                continue; // it left meanwhile
            };
            let frames = match (&read, from) {
                (Ok(stream), Some(from)) => self.owed(resume_from(stream, &from), &stream.head),
                (Ok(stream), None) => self.owed(
                    Resume::Resync(ResyncReason::BrokerReconnected),
                    &stream.head,
                ),
                (Err(()), _) => vec![unavailable_frame()],
            };
            self.release(g, held, &frames, head.clone());
        }
    }
}
