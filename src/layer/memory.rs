//! `MemoryLayer`: a single process's layer — publishing is local delivery.

use std::sync::OnceLock;

use futures::future::BoxFuture;

use super::{ChannelLayer, GroupMessage, GroupName, Inbound};
use crate::error::Result;

/// Scope: one process. Every publish is handed straight to the local hub; nothing crosses a
/// process boundary, so running several courier processes with this layer partitions the users.
#[derive(Default)]
pub struct MemoryLayer {
    inbound: OnceLock<Inbound>,
}

impl MemoryLayer {
    /// A layer with no hub attached yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ChannelLayer for MemoryLayer {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn is_local(&self) -> bool {
        true
    }

    fn attach(&self, inbound: Inbound) {
        let _ = self.inbound.set(inbound);
    }

    // Membership lives in the hub; with one process there is nothing to (un)subscribe from.
    fn subscribe(&self, _group: &GroupName) {}

    fn unsubscribe(&self, _group: &GroupName) {}

    fn publish<'a>(
        &'a self,
        group: &'a GroupName,
        message: &'a GroupMessage,
    ) -> BoxFuture<'a, Result<()>> {
        if let Some(inbound) = self.inbound.get() {
            inbound(group, message, None);
        }
        Box::pin(std::future::ready(Ok(())))
    }
}
