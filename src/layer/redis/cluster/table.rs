//! The partition table: the hub's wishes, what the server confirmed, and where messages may be lost.
//!
//! Three parties write it, each briefly under one std mutex (never across an `.await`): the hub
//! (`set`, under the hub's own lock, so it only records and wakes), the push callback of the
//! cluster connection (confirmations, drops, delivery filtering) and the connection task (which
//! reads a [`Plan`] and acts on it). The push callback is the only one that sees the server's
//! answers in stream order, so it decides what is live and when a resync is due.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::layer::GroupName;

/// The shared table, one entry per partition.
pub(super) struct Table {
    inner: Mutex<Inner>,
    /// Wakes the task: a partition became (un)wanted, or the server dropped a wanted one.
    changed: Notify,
    /// Wakes the task: the session in `Inner::lost` lost a node connection.
    lost: Notify,
    /// Wakes resumes waiting for their partition to be confirmed.
    went_live: Notify,
}

struct Inner {
    /// The current connection's session; pushes from older connections are ignored.
    epoch: u64,
    /// A session whose connection to some node dropped (the task rebuilds it).
    lost: Option<u64>,
    parts: Vec<Part>,
}

#[derive(Default)]
struct Part {
    /// The local groups in this partition: the hub's wishes.
    groups: HashSet<GroupName>,
    /// The server confirmed our subscription on the current connection and has not dropped it.
    live: bool,
    /// Messages may have been missed while the partition was wanted but not live: resync its
    /// groups when it is confirmed again.
    gap: bool,
}

/// What the task should change on the current connection.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Plan {
    /// Wanted partitions that are not live: SSUBSCRIBE them.
    pub(super) subscribe: Vec<usize>,
    /// Live partitions nobody wants any more: SUNSUBSCRIBE them.
    pub(super) unsubscribe: Vec<usize>,
}

impl Table {
    /// A table of `partitions` empty entries.
    pub(super) fn new(partitions: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                epoch: 0,
                lost: None,
                parts: (0..partitions).map(|_| Part::default()).collect(),
            }),
            changed: Notify::new(),
            lost: Notify::new(),
            went_live: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves the table consistent, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the hub's wish for `group` of partition `k`; wakes the task when the partition's
    /// need for a subscription flips.
    pub(super) fn set(&self, k: usize, group: &GroupName, wanted: bool) {
        let mut inner = self.lock();
        let Some(part) = inner.parts.get_mut(k) else {
            return;
        };
        let was_empty = part.groups.is_empty();
        if wanted {
            part.groups.insert(group.clone());
        } else {
            part.groups.remove(group);
        }
        let flipped = was_empty != part.groups.is_empty();
        drop(inner);
        if flipped {
            // notify_one keeps a permit while the task is busy, so no flip is missed.
            self.changed.notify_one();
        }
    }

    /// A new connection is being built: from now on only its pushes count (`epoch` returned), and
    /// nothing is live on it yet.
    pub(super) fn advance(&self) -> u64 {
        let mut inner = self.lock();
        inner.epoch += 1;
        for part in &mut inner.parts {
            part.live = false;
        }
        inner.epoch
    }

    /// The connection of the current epoch is up. `resumed`: an earlier one existed (or failed),
    /// so every wanted partition may have missed messages and gets a resync once subscribed.
    pub(super) fn open(&self, resumed: bool) {
        if resumed {
            for part in &mut self.lock().parts {
                part.gap |= !part.groups.is_empty();
            }
        }
    }

    /// What differs between the wishes and the server, now.
    pub(super) fn plan(&self) -> Plan {
        let inner = self.lock();
        let mut plan = Plan::default();
        for (k, part) in inner.parts.iter().enumerate() {
            match (part.groups.is_empty(), part.live) {
                (false, false) => plan.subscribe.push(k),
                (true, true) => plan.unsubscribe.push(k),
                _ => {}
            }
        }
        plan
    }

    /// The server confirmed partition `k` on connection `epoch`. Returns the groups to resync:
    /// all of the partition's, when this closes a gap; none otherwise.
    pub(super) fn confirmed(&self, epoch: u64, k: usize) -> Vec<GroupName> {
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return Vec::new();
        }
        let Some(part) = inner.parts.get_mut(k) else {
            return Vec::new();
        };
        part.live = true;
        let gap = std::mem::take(&mut part.gap);
        let groups = if gap {
            part.groups.iter().cloned().collect()
        } else {
            Vec::new()
        };
        drop(inner);
        self.went_live.notify_waiters();
        groups
    }

    /// The server unsubscribed partition `k` on connection `epoch`: our SUNSUBSCRIBE, or its own
    /// (the slot moved, or the node became a replica). Returns `true` when the partition is still
    /// wanted: a gap, and the task is woken to subscribe it again.
    pub(super) fn dropped(&self, epoch: u64, k: usize) -> bool {
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return false;
        }
        let Some(part) = inner.parts.get_mut(k) else {
            return false;
        };
        part.live = false;
        let wanted = !part.groups.is_empty();
        part.gap |= wanted;
        drop(inner);
        if wanted {
            self.changed.notify_one();
        }
        wanted
    }

    /// Connection `epoch` lost a node: the task ends that session.
    pub(super) fn disconnected(&self, epoch: u64) {
        let mut inner = self.lock();
        if inner.epoch == epoch {
            inner.lost = Some(epoch);
            drop(inner);
            self.lost.notify_one();
        }
    }

    /// Keeps the entries of partition `k` whose group has local members, if `epoch` is current
    /// (an old connection's messages would be duplicates), with the group names to deliver to.
    pub(super) fn filter<'a, B>(
        &self,
        epoch: u64,
        k: usize,
        entries: impl Iterator<Item = (&'a str, B)>,
    ) -> Vec<(GroupName, B)> {
        let inner = self.lock();
        if inner.epoch != epoch {
            return Vec::new();
        }
        let Some(part) = inner.parts.get(k) else {
            return Vec::new();
        };
        entries
            .filter_map(|(name, body)| part.groups.get(name).map(|g| (g.clone(), body)))
            .collect()
    }

    /// How many partitions are wanted but not live.
    pub(super) fn pending(&self) -> usize {
        let inner = self.lock();
        inner
            .parts
            .iter()
            .filter(|p| !p.groups.is_empty() && !p.live)
            .count()
    }

    /// Resolves after [`set`](Self::set) flipped a partition or a wanted one was dropped.
    pub(super) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Resolves once partition `k` is subscribed and confirmed on the current connection.
    pub(super) async fn live(&self, k: usize) {
        loop {
            let notified = self.went_live.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().parts.get(k).is_none_or(|p| p.live) {
                return;
            }
            notified.await;
        }
    }

    /// Resolves once connection `epoch` lost a node. Cancel-safe: the condition is state.
    pub(super) async fn lost(&self, epoch: u64) {
        loop {
            let notified = self.lost.notified();
            if self.lock().lost == Some(epoch) {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(name: &str) -> GroupName {
        GroupName::new(name).expect("valid")
    }

    #[test]
    fn plan_follows_wishes_and_confirmations() {
        let t = Table::new(4);
        let epoch = t.advance();
        t.open(false);
        t.set(1, &g("a"), true);
        t.set(1, &g("b"), true);
        t.set(3, &g("c"), true);
        assert_eq!(t.plan().subscribe, [1, 3]);
        assert!(
            t.confirmed(epoch, 1).is_empty(),
            "a first subscription is no gap"
        );
        assert_eq!(t.plan().subscribe, [3]);
        assert_eq!(t.pending(), 1);
        t.set(1, &g("a"), false);
        t.set(1, &g("b"), false);
        assert_eq!(t.plan().unsubscribe, [1]);
        assert!(!t.dropped(epoch, 1), "our own SUNSUBSCRIBE is no gap");
        assert_eq!(
            t.plan(),
            Plan {
                subscribe: vec![3],
                unsubscribe: vec![]
            }
        );
    }

    #[test]
    fn a_server_drop_of_a_wanted_partition_is_a_gap_closed_by_a_resync() {
        let t = Table::new(2);
        let epoch = t.advance();
        t.set(0, &g("a"), true);
        t.confirmed(epoch, 0);
        assert!(t.dropped(epoch, 0));
        assert_eq!(t.plan().subscribe, [0]);
        assert_eq!(t.confirmed(epoch, 0), [g("a")]);
        assert!(t.confirmed(epoch, 0).is_empty(), "one resync per gap");
    }

    #[test]
    fn a_new_connection_ignores_the_old_and_resyncs_what_was_wanted() {
        let t = Table::new(2);
        let old = t.advance();
        t.set(0, &g("a"), true);
        t.confirmed(old, 0);
        let new = t.advance();
        t.open(true);
        assert_eq!(
            t.plan().subscribe,
            [0],
            "nothing is live on a new connection"
        );
        assert!(t.confirmed(old, 0).is_empty());
        assert!(!t.dropped(old, 0));
        t.disconnected(old);
        assert!(
            t.lock().lost.is_none(),
            "an old connection's drop ends nothing"
        );
        let entries = [("a", 1), ("b", 2)];
        assert!(t.filter(old, 0, entries.into_iter()).is_empty());
        assert_eq!(t.filter(new, 0, entries.into_iter()), [(g("a"), 1)]);
        assert_eq!(t.confirmed(new, 0), [g("a")]);
    }
}
