//! Joining a group: a plain member, or a positioned one (`recover=1`, `since=`) whose welcome,
//! replay or `resync` come first — from this hub's streams in one critical section, or from the
//! layer's history with live events held until the read is merged in.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;

use super::shard::{Group, Held, HeldFor};
use super::{Hub, Refused, Streams};
use crate::history::{resume_from, Position, Recover, Resume};
use crate::layer::{GroupName, StreamHistory};
use crate::metrics::Metrics;
use crate::outbox::{Outbox, Push};
use crate::protocol::{self, CloseCode, ResyncReason};

/// Bound on waiting for the subscription and reading the layer's history; past it the client
/// is told `broker_reconnected` and goes on live.
const READ_BOUND: Duration = Duration::from_secs(5);
/// Reads retried within that bound.
const READ_TRIES: usize = 5;

/// The `resync` of a positioned member whose stream could not be read: the layer's own
/// `broker_reconnected` frame (no position is known to put in it), encoded once.
pub(super) fn unavailable_frame() -> Bytes {
    static FRAME: LazyLock<Bytes> =
        LazyLock::new(|| protocol::event_frame(crate::layer::resync_message()).unwrap_or_default());
    FRAME.clone()
}

/// What `welcome` builds: the first frame, given the position the connection starts from.
type Welcome<'a> = Box<dyn FnOnce(Option<&Position>) -> Option<Bytes> + Send + 'a>;

impl Hub {
    /// Adds a connection to a group (the group's first local member subscribes it on the layer).
    /// Refused (`false`) when the group already has `max_members` local members (0: no limit).
    pub fn group_add(&self, group: &GroupName, member: Arc<Outbox>, max_members: usize) -> bool {
        self.join_now(group, member, max_members, &Recover::No, Box::new(|_| None))
            .is_ok()
    }

    /// Adds a connection to a group with its first frames: `welcome` (given the position the
    /// connection starts from, on a positioned join), then on a resume the replay or the `resync`
    /// — so no live event can come before them or be missed between.
    ///
    /// The per-user connection limit (`max_members`, 0: none) is checked under the group's lock,
    /// so concurrent handshakes of one user cannot overshoot it. A positioned join where nobody
    /// keeps history is served as a plain one.
    pub async fn join(
        &self,
        group: &GroupName,
        member: Arc<Outbox>,
        max_members: usize,
        recover: &Recover,
        welcome: impl FnOnce(Option<&Position>) -> Option<Bytes> + Send,
    ) -> Result<(), Refused> {
        let from_layer = matches!(self.0.streams, Streams::Layer) && group.is_user_stream();
        if recover.positioned() && from_layer {
            return self
                .join_from_layer(group, member, max_members, recover, Box::new(welcome))
                .await;
        }
        self.join_now(group, member, max_members, recover, Box::new(welcome))
    }

    /// A join served from this hub alone, in one critical section.
    fn join_now(
        &self,
        group: &GroupName,
        member: Arc<Outbox>,
        max_members: usize,
        recover: &Recover,
        welcome: Welcome<'_>,
    ) -> Result<(), Refused> {
        let now = self.now();
        let mut shard = self.shard(group.as_str());
        room(shard.groups.get(group), max_members)?;
        let positioned = recover.positioned() && self.stream_kept(group);
        let frames = match self.local_history().filter(|_| positioned) {
            Some(bounds) => {
                let g = shard.group_with_stream(group, now, &self.0.metrics);
                let stream = g.stream.as_mut().expect("just made");
                stream.touched = now;
                let head = stream.head();
                self.first_frames(recover, &head, welcome, |from| {
                    stream.resume(from, now, bounds)
                })
            }
            None => welcome(None).into_iter().collect(),
        };
        self.push_first(&member, &frames);
        let g = shard.groups.entry(group.clone()).or_default();
        self.enter(group, g);
        g.add(member, positioned);
        Ok(())
    }

    /// A positioned join over the layer's history: hold the member's live events, wait for the
    /// subscription, read the stream, then — under the lock again — send the welcome, the replay
    /// (or `resync`) and the held events the read did not cover, and make the member live.
    async fn join_from_layer(
        &self,
        group: &GroupName,
        member: Arc<Outbox>,
        max_members: usize,
        recover: &Recover,
        welcome: Welcome<'_>,
    ) -> Result<(), Refused> {
        {
            let mut shard = self.shard(group.as_str());
            room(shard.groups.get(group), max_members)?;
            let g = shard.groups.entry(group.clone()).or_default();
            self.enter(group, g);
            g.held.push(Held::new(member.clone(), HeldFor::Join));
        }
        let after = match recover {
            Recover::Since(from) => Some(from.offset),
            _ => None,
        };
        let read = self.read_layer(group, after).await;
        let mut shard = self.shard(group.as_str());
        let Some(g) = shard.groups.get_mut(group) else {
            return Ok(()); // it left (closed) meanwhile
        };
        let Some(held) = g.take_held(member.id()) else {
            return Ok(());
        };
        let frames = match &read {
            Ok(stream) => self.first_frames(recover, &stream.head, welcome, |from| {
                resume_from(stream, from)
            }),
            Err(_) => {
                let mut frames: Vec<Bytes> = welcome(None).into_iter().collect();
                frames.push(unavailable_frame());
                frames
            }
        };
        self.release(g, held, &frames, read.ok().map(|s| s.head));
        Ok(())
    }

    /// `group`'s stream after `after`, read once its subscription is live (the layer contract),
    /// within [`READ_BOUND`]. A connection that broke (a Redis restart) fails its first command
    /// and reconnects, so failed reads are retried. Counted `unavailable` when it cannot be read.
    pub(super) async fn read_layer(
        &self,
        group: &GroupName,
        after: Option<u64>,
    ) -> Result<StreamHistory, ()> {
        let layer = self.layer().clone();
        let read = tokio::time::timeout(READ_BOUND, async {
            layer.subscription_live(group).await;
            let mut tries = 0;
            loop {
                match layer.read_stream(group, after).await {
                    Err(e) if tries < READ_TRIES => {
                        tracing::debug!(%group, error = %e, "stream read failed; retrying");
                        tries += 1;
                        tokio::time::sleep(READ_BOUND / 10).await;
                    }
                    read => break read,
                }
            }
        })
        .await;
        let error = match read {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        tracing::warn!(%group, %error, "cannot read the stream for a resume");
        Metrics::inc(&self.0.metrics.resumes, "unavailable");
        Err(())
    }

    /// Makes a held member live: its first `frames`, then the held events past the read's `head`
    /// (`None`: the read failed, all of them). Should an event have gone missing on its way here
    /// after the read, it cannot go live over the gap: it is closed 4008 and resumes.
    pub(super) fn release(
        &self,
        g: &mut Group,
        held: Held,
        frames: &[Bytes],
        head: Option<Position>,
    ) {
        let member = held.out.clone();
        if head.as_ref().is_some_and(|h| !held.continues(h.offset)) {
            Metrics::inc(&self.0.metrics.drops, "stream_gap");
            member.close(CloseCode::SlowConsumer);
        } else {
            self.push_first(&member, frames);
            let last = head.as_ref().map(|h| h.offset);
            self.push_each(std::slice::from_ref(&member), &held.after(last));
            if let Some(head) = head {
                g.caught_up_to.push((member.id(), head));
            }
        }
        // Closed or live, it is listed: it leaves through `group_discard`.
        g.positioned.push(member);
    }

    /// A positioned member's first frames: the welcome, then the replay or one `resync`.
    fn first_frames(
        &self,
        recover: &Recover,
        head: &Position,
        welcome: Welcome<'_>,
        resume: impl FnOnce(&Position) -> Resume,
    ) -> Vec<Bytes> {
        let (at, rest) = match recover {
            Recover::Since(from) => (from, self.owed(resume(from), head)),
            Recover::Unusable => (
                head,
                self.owed(Resume::Resync(ResyncReason::EpochChanged), head),
            ),
            _ => (head, Vec::new()),
        };
        welcome(Some(at)).into_iter().chain(rest).collect()
    }

    /// What a member at a position is owed, counted by result: the replay, or one `resync`
    /// carrying the stream's `head`.
    pub(super) fn owed(&self, resume: Resume, head: &Position) -> Vec<Bytes> {
        let m = &self.0.metrics;
        match resume {
            Resume::Replay(frames) => {
                let result = if frames.is_empty() {
                    "current"
                } else {
                    "replayed"
                };
                Metrics::inc(&m.resumes, result);
                m.replayed_events.inc_by(frames.len() as u64);
                frames
            }
            Resume::Resync(reason) => {
                Metrics::inc(&m.resumes, reason.as_str());
                vec![protocol::resync(reason, head)]
            }
        }
    }

    /// Counts a member about to be added to `g`; the group's first local member subscribes it on
    /// the layer.
    fn enter(&self, group: &GroupName, g: &Group) {
        if !g.has_members() {
            self.0.metrics.groups.inc();
            self.0.layer.subscribe(group);
        }
        self.0.metrics.group_members.inc();
    }

    /// Queues a joining member's first frames. The configuration keeps a full replay within an
    /// empty queue; should it not fit anyway, the member is slow like any other.
    fn push_first(&self, member: &Outbox, frames: &[Bytes]) {
        if member.push_all(frames).1 == Push::Full {
            self.on_full(member, 1);
        }
    }
}

/// The per-user connection limit: refused when `g` already has `max` members (0: no limit).
fn room(g: Option<&Group>, max: usize) -> Result<(), Refused> {
    match g {
        Some(g) if max > 0 && g.len() >= max => Err(Refused::Full),
        _ => Ok(()),
    }
}
