//! One shard of the hub's group map: groups, their members and streams, and the shard's share of
//! the history byte cap.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::HistoryConfig;
use crate::history::{Position, Stream};
use crate::layer::GroupName;
use crate::metrics::Metrics;
use crate::outbox::{ConnId, Outbox};
use crate::protocol;

/// A group here: its local members, split by whether they asked for positions, and its stream.
#[derive(Default)]
pub(super) struct Group {
    /// Members that get the reference's frames.
    pub(super) plain: Vec<Arc<Outbox>>,
    /// Members that asked for positions (`recover=1`).
    pub(super) positioned: Vec<Arc<Outbox>>,
    /// Positioned members still reading the layer's history: live events wait here.
    pub(super) held: Vec<Held>,
    /// The position of the last numbered event the layer delivered here (layer-kept streams):
    /// the next must follow it, or the positioned members have missed something.
    pub(super) last: Option<Position>,
    /// Members that resumed from the layer's stream, with the head their read reached: an
    /// event at or below it that arrives later was published before the read but was still on
    /// its way here, and they already have it from the stream. Dropped once passed.
    pub(super) caught_up_to: Vec<(ConnId, Position)>,
    /// The user stream, when this hub keeps history.
    pub(super) stream: Option<Stream>,
}

impl Group {
    pub(super) fn len(&self) -> usize {
        self.plain.len() + self.positioned.len() + self.held.len()
    }

    pub(super) fn has_members(&self) -> bool {
        self.len() > 0
    }

    pub(super) fn members(&self) -> impl Iterator<Item = &Arc<Outbox>> {
        let held = self.held.iter().map(|h| &h.out);
        self.plain.iter().chain(&self.positioned).chain(held)
    }

    /// Member `id`'s hold, taken out (it is no longer held); `None` if it left meanwhile.
    pub(super) fn take_held(&mut self, id: ConnId) -> Option<Held> {
        let pos = self.held.iter().position(|h| h.out.id() == id)?;
        Some(self.held.swap_remove(pos))
    }

    pub(super) fn add(&mut self, member: Arc<Outbox>, positioned: bool) {
        if positioned {
            self.positioned.push(member);
        } else {
            self.plain.push(member);
        }
    }

    /// Removes member `id`; whether it was there.
    pub(super) fn remove(&mut self, id: ConnId) -> bool {
        self.caught_up_to.retain(|(i, _)| *i != id);
        for list in [&mut self.plain, &mut self.positioned] {
            if let Some(pos) = list.iter().position(|m| m.id() == id) {
                list.swap_remove(pos);
                return true;
            }
        }
        self.take_held(id).is_some()
    }

    /// Appends `frames` to the stream; returns their positioned frames (only when a positioned
    /// member is here to get them) and the change in counted history bytes.
    pub(super) fn record(
        &mut self,
        frames: &[Bytes],
        now: u32,
        cfg: &HistoryConfig,
    ) -> (Vec<Bytes>, isize) {
        let Some(stream) = self.stream.as_mut() else {
            return (Vec::new(), 0);
        };
        let want = !self.positioned.is_empty();
        let mut positioned = Vec::with_capacity(if want { frames.len() } else { 0 });
        let mut delta = 0;
        for frame in frames {
            let (offset, d) = stream.append(frame, now, cfg);
            delta += d;
            if want {
                positioned.push(protocol::positioned(frame, offset, stream.epoch()));
            }
        }
        (positioned, delta)
    }
}

/// A positioned member reading the layer's history: the live events that arrived meanwhile, by
/// offset, bounded like its outbound queue (past it the member is closed 4008: reordering or
/// dropping would be silent).
pub(super) struct Held {
    pub(super) out: Arc<Outbox>,
    /// Why it is held: joining, or being caught up in place.
    pub(super) why: HeldFor,
    frames: Vec<(Option<u64>, Bytes)>,
    bytes: usize,
}

/// Why a member's live events are held.
#[derive(PartialEq, Eq)]
pub(super) enum HeldFor {
    /// Its join reads the stream (the join finishes it).
    Join,
    /// The layer lost events on their way here: a catch-up reads the stream after this position
    /// (`None`: unknown, the member is told `resync`).
    CatchUp(Option<Position>),
}

impl Held {
    pub(super) fn new(out: Arc<Outbox>, why: HeldFor) -> Self {
        Self {
            out,
            why,
            frames: Vec::new(),
            bytes: 0,
        }
    }

    /// Keeps a live event (with its offset, if numbered); `false` when the hold is full.
    pub(super) fn hold(&mut self, offset: Option<u64>, frame: Bytes) -> bool {
        let limits = self.out.limits();
        if self.frames.len() >= limits.max_frames || self.bytes + frame.len() > limits.max_bytes {
            return false;
        }
        self.bytes += frame.len();
        self.frames.push((offset, frame));
        true
    }

    /// Whether the numbered events held past `last` follow it without a gap (a gap is an event
    /// lost on its way here after the read: the member must not go live over it).
    pub(super) fn continues(&self, last: u64) -> bool {
        let mut want = last + 1;
        for offset in self.frames.iter().filter_map(|(o, _)| *o) {
            if offset > last {
                if offset != want {
                    return false;
                }
                want += 1;
            }
        }
        true
    }

    /// The held events the history read did not cover: unnumbered ones, and those past `last`.
    pub(super) fn after(self, last: Option<u64>) -> Vec<Bytes> {
        let fresh = move |o: Option<u64>| match (o, last) {
            (Some(o), Some(last)) => o > last,
            _ => true,
        };
        self.frames
            .into_iter()
            .filter(|(o, _)| fresh(*o))
            .map(|(_, f)| f)
            .collect()
    }
}

/// One shard: its groups and the history bytes they hold.
#[derive(Default)]
pub(super) struct Shard {
    pub(super) groups: HashMap<GroupName, Group>,
    /// Counted bytes of this shard's streams (see [`Stream::bytes`]).
    pub(super) history_bytes: usize,
}

impl Shard {
    /// `group`'s entry, with a stream made for it if it has none yet.
    pub(super) fn group_with_stream(
        &mut self,
        group: &GroupName,
        now: u32,
        metrics: &Metrics,
    ) -> &mut Group {
        // `entry` would clone the name on every publish; only a new group needs a key of its own.
        if !self.groups.contains_key(group) {
            self.groups.insert(group.clone(), Group::default());
        }
        let Some(g) = self.groups.get_mut(group) else {
            unreachable!("inserted above");
        };
        if g.stream.is_none() {
            let stream = Stream::new(now);
            self.history_bytes += stream.bytes();
            metrics.history_bytes.inc_by(stream.bytes() as i64);
            metrics.history_streams.inc();
            g.stream = Some(stream);
        }
        g
    }

    /// Applies a change in counted bytes.
    pub(super) fn add_bytes(&mut self, delta: isize, metrics: &Metrics) {
        self.history_bytes = self.history_bytes.saturating_add_signed(delta);
        metrics.history_bytes.inc_by(delta as i64);
    }

    /// Keeps the shard within `cap` bytes after an append to `current`: the streams idle longest
    /// that no one is connected to go first (their positions with them: a client coming back is
    /// told `epoch_changed`), down to 90 % of the cap so this is not paid on every append; if
    /// that is not enough, `current`'s own events go (its clients are told `position_expired`).
    pub(super) fn enforce_cap(&mut self, current: &GroupName, cap: usize, metrics: &Metrics) {
        if self.history_bytes <= cap {
            return;
        }
        let target = cap / 10 * 9;
        let mut idle: Vec<(u32, GroupName)> = self
            .groups
            .iter()
            .filter(|(name, g)| !g.has_members() && *name != current && g.stream.is_some())
            .map(|(name, g)| (g.stream.as_ref().map_or(0, |s| s.touched), name.clone()))
            .collect();
        idle.sort_unstable_by_key(|(touched, _)| *touched);
        for (_, name) in idle {
            if self.history_bytes <= target {
                break;
            }
            self.drop_stream(&name, metrics);
            metrics.history_evictions.inc();
        }
        if self.history_bytes > cap {
            let freed = self
                .groups
                .get_mut(current)
                .and_then(|g| g.stream.as_mut())
                .map_or(0, Stream::clear);
            self.add_bytes(-(freed as isize), metrics);
        }
    }

    /// Removes `name`'s stream (and its entry, if no one is connected).
    fn drop_stream(&mut self, name: &GroupName, metrics: &Metrics) {
        let Some(g) = self.groups.get_mut(name) else {
            return;
        };
        let Some(stream) = g.stream.take() else {
            return;
        };
        if !g.has_members() {
            self.groups.remove(name);
        }
        self.add_bytes(-(stream.bytes() as isize), metrics);
        metrics.history_streams.dec();
    }

    /// Trims every stream by age, and forgets positions idle past their TTL with no one here.
    pub(super) fn sweep(&mut self, now: u32, cfg: &HistoryConfig, metrics: &Metrics) {
        let mut freed = 0;
        let mut idle = Vec::new();
        for (name, g) in &mut self.groups {
            let Some(stream) = g.stream.as_mut() else {
                continue;
            };
            freed += stream.trim(now, cfg);
            let idle_for = now.saturating_sub(stream.touched);
            let forgotten = stream.is_empty() && idle_for >= cfg.meta_ttl_secs();
            if forgotten && g.plain.is_empty() && g.positioned.is_empty() {
                idle.push(name.clone());
            }
        }
        self.add_bytes(-(freed as isize), metrics);
        for name in idle {
            self.drop_stream(&name, metrics);
        }
    }
}
