//! The `resync` a Redis layer sends after a broker outage: what was published meanwhile is gone.

use serde_json::json;

use crate::layer::{GroupMessage, GroupName, Inbound};

/// The message the hub turns into `{"type":"resync","data":{"reason":"broker_reconnected"}}`:
/// messages published while the broker was unreachable are gone, so clients should refetch.
pub fn resync_message() -> GroupMessage {
    let v = json!({"type": "resync", "data": {"reason": "broker_reconnected"}});
    v.as_object().cloned().unwrap_or_default()
}

/// Tells every group in `groups` to resync, through the hub's inbound callback.
pub(crate) fn send_resync<'a>(
    inbound: Option<&Inbound>,
    groups: impl IntoIterator<Item = &'a GroupName>,
) {
    let Some(inbound) = inbound else { return };
    let message = resync_message();
    for group in groups {
        inbound(group, &message, None);
    }
}
