//! What the hub wants subscribed: the desired-subscription set a layer's task reconciles.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::layer::GroupName;

/// What the hub wants subscribed, written under the hub's lock (so: never blocks, never awaits)
/// and reconciled by the layer's task. `dirty` holds the groups whose wish changed since the task
/// last looked, so a reconcile costs O(changes), not O(groups).
///
/// It also records which groups are *live* — subscribed, and confirmed by the server — so a
/// resume can wait for its group's messages to flow before it reads history (anything published
/// after the read then arrives live; anything before is in the history).
#[derive(Default)]
pub(crate) struct Wishes {
    inner: Mutex<WishSets>,
    changed: Notify,
    went_live: Notify,
}

#[derive(Default)]
struct WishSets {
    wanted: HashSet<GroupName>,
    dirty: HashSet<GroupName>,
    live: HashSet<GroupName>,
}

impl Wishes {
    fn lock(&self) -> MutexGuard<'_, WishSets> {
        // Each update is a single insert/remove pair: a poisoned lock still holds consistent sets.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `group` should (or should no longer) be received, and wakes the task.
    pub(crate) fn set(&self, group: &GroupName, wanted: bool) {
        let mut sets = self.lock();
        if wanted {
            sets.wanted.insert(group.clone());
        } else {
            sets.wanted.remove(group);
        }
        sets.dirty.insert(group.clone());
        drop(sets);
        // notify_one stores a permit when the task is busy, so no change is ever missed.
        self.changed.notify_one();
    }

    /// Everything wanted now; clears the dirty set (a full sync supersedes pending changes).
    pub(crate) fn snapshot(&self) -> HashSet<GroupName> {
        let mut sets = self.lock();
        sets.dirty.clear();
        sets.wanted.clone()
    }

    /// The groups whose wish changed since the last call, each with whether it is wanted now.
    pub(crate) fn take_changes(&self) -> Vec<(GroupName, bool)> {
        let mut sets = self.lock();
        let dirty = std::mem::take(&mut sets.dirty);
        dirty
            .into_iter()
            .map(|g| {
                let w = sets.wanted.contains(&g);
                (g, w)
            })
            .collect()
    }

    /// Records that `groups` are now subscribed (the server confirmed) or not.
    pub(crate) fn mark_live<'a>(
        &self,
        groups: impl IntoIterator<Item = &'a GroupName>,
        live: bool,
    ) {
        let mut sets = self.lock();
        for g in groups {
            if live {
                sets.live.insert(g.clone());
            } else {
                sets.live.remove(g);
            }
        }
        drop(sets);
        if live {
            self.went_live.notify_waiters();
        }
    }

    /// The connection is gone: nothing is live until it is back and subscribed again.
    pub(crate) fn clear_live(&self) {
        self.lock().live.clear();
    }

    /// Resolves once `group`'s subscription is live.
    pub(crate) async fn live(&self, group: &GroupName) {
        loop {
            let notified = self.went_live.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().live.contains(group) {
                return;
            }
            notified.await;
        }
    }

    /// Resolves when [`set`](Self::set) was called since the last wake-up.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }
}
