//! What the hub wants subscribed: the desired-subscription set a layer's task reconciles.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::layer::GroupName;

/// What the hub wants subscribed, written under the hub's lock (so: never blocks, never awaits)
/// and reconciled by the layer's task. `dirty` holds the groups whose wish changed since the task
/// last looked, so a reconcile costs O(changes), not O(groups).
#[derive(Default)]
pub(crate) struct Wishes {
    inner: Mutex<WishSets>,
    changed: Notify,
}

#[derive(Default)]
struct WishSets {
    wanted: HashSet<GroupName>,
    dirty: HashSet<GroupName>,
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

    /// Resolves when [`set`](Self::set) was called since the last wake-up.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }
}
