//! The HTTP publisher: `POST /api/notify` with a JSON array batch and `X-API-Key`, over one
//! keep-alive HTTP/1.1 connection per lane.

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{header, Request, StatusCode};

use super::{Event, EventCodec, PublishError, Publisher};
use crate::net::{connect, Peer};

/// Publishes batches over HTTP.
pub(crate) struct HttpPublisher {
    peer: Peer,
    api_key: String,
    codec: EventCodec,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl HttpPublisher {
    /// A publisher to `peer` (`https://` when the target is `wss://`); connects lazily, and
    /// again after a connection error.
    pub(crate) fn new(peer: Peer, api_key: String, codec: EventCodec) -> Self {
        Self {
            peer,
            api_key,
            codec,
            sender: None,
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        connect(&self.peer).await
    }

    fn body(&self, batch: &[Event]) -> String {
        let pads: usize = batch.iter().map(|e| self.codec.pad(e).len()).sum();
        let mut body = String::with_capacity(batch.len() * 128 + pads + 2);
        body.push('[');
        for (i, e) in batch.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(r#"{"user_id":"#);
            body.push_str(&e.user_id.to_string());
            body.push_str(r#","type":""#);
            body.push_str(self.codec.kind(e));
            body.push_str(r#"","data":"#);
            self.codec.write_data(e, &mut body);
            body.push('}');
        }
        body.push(']');
        body
    }
}

impl Publisher for HttpPublisher {
    fn name(&self) -> &'static str {
        "http"
    }

    fn publish<'a>(&'a mut self, batch: &'a [Event]) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            let mut sender = match self.sender.take() {
                Some(s) if !s.is_closed() => s,
                // Not connected: nothing of the batch reached the server.
                _ => self.connect().await.map_err(PublishError::refused)?,
            };
            let request = Request::post("/api/notify")
                .header(header::HOST, &self.peer.host)
                .header(header::CONTENT_TYPE, "application/json")
                .header("x-api-key", &self.api_key)
                .body(Full::new(Bytes::from(self.body(batch))))
                .map_err(|e| format!("request: {e}"))?;
            sender.ready().await.map_err(|e| format!("send: {e}"))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("send: {e}"))?;
            let status = response.status();
            // Read the body so the connection can carry the next request.
            let _ = response.into_body().collect().await;
            self.sender = Some(sender);
            if status == StatusCode::ACCEPTED {
                Ok(())
            } else {
                Err(PublishError::refused(format!("http {}", status.as_u16())))
            }
        })
    }
}
