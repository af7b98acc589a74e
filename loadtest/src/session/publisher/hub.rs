//! The in-process publisher (`--publisher embedded`): `Hub::notify_user` on the embedded server's
//! hub and runtime.

use courier::{AppState, UserId};
use futures::future::BoxFuture;

use super::{Event, EventCodec, PublishError, Publisher};

/// Publishes through the embedded server's hub, like backend code calling `notify_user`.
pub(crate) struct HubPublisher {
    state: AppState,
    codec: EventCodec,
}

impl HubPublisher {
    /// A publisher over `state`.
    pub(crate) fn new(state: AppState, codec: EventCodec) -> Self {
        Self { state, codec }
    }
}

impl Publisher for HubPublisher {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn publish<'a>(&'a mut self, batch: &'a [Event]) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            for e in batch {
                let user = UserId::Int(e.user_id as i64);
                self.state
                    .hub()
                    .notify_user(&user, self.codec.kind(e), self.codec.data_value(e))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    }
}
