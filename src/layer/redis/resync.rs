//! The `resync` a Redis layer sends after a broker outage: what was published meanwhile is gone.

use std::sync::LazyLock;

use serde_json::json;

use crate::layer::{GroupMessage, GroupName, Inbound};

static RESYNC: LazyLock<GroupMessage> = LazyLock::new(|| {
    let v = json!({"type": "resync", "data": {"reason": "broker_reconnected"}});
    v.as_object().cloned().unwrap_or_default()
});

/// The message the hub turns into `{"type":"resync","data":{"reason":"broker_reconnected"}}`:
/// messages published while the broker was unreachable are gone, so clients should refetch.
///
/// One instance, so the hub tells the layer's outage signal ([`is_outage_signal`]) from a
/// backend's event that happens to look the same (that one is delivered like any other).
pub fn resync_message() -> &'static GroupMessage {
    &RESYNC
}

/// Whether `message` is the layer's outage signal itself (by identity, not by content).
pub(crate) fn is_outage_signal(message: &GroupMessage) -> bool {
    std::ptr::eq(message, resync_message())
}

/// Tells every group in `groups` to resync, through the hub's inbound callback.
pub(crate) fn send_resync<'a>(
    inbound: Option<&Inbound>,
    groups: impl IntoIterator<Item = &'a GroupName>,
) {
    let Some(inbound) = inbound else { return };
    for group in groups {
        inbound(group, resync_message(), None);
    }
}
