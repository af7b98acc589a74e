//! Connections to Redis: clients per host, bounded connects and responses, the publisher.

use std::time::Duration;

/// How long to wait for a TCP connect + handshake to Redis before trying again.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a non-blocking command may take before the connection counts as broken.
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Channels/keys per SUBSCRIBE or pipeline, so one command never carries 100k arguments.
pub(crate) const CHUNK: usize = 512;

/// Opens a client for `url`, mapping the error into the crate's. The URL is not echoed: it may
/// carry a password.
pub(crate) fn client(url: &str) -> crate::Result<redis::Client> {
    redis::Client::open(url).map_err(|e| crate::Error::Config(format!("--redis-url: {e}")))
}

/// One client per host, in `hosts` order.
pub(crate) fn clients(urls: &[String]) -> crate::Result<Vec<redis::Client>> {
    urls.iter().map(|u| client(u)).collect()
}

/// A multiplexed connection with bounded connect and response times. `response` must exceed any
/// blocking command's own timeout sent on it.
pub(crate) async fn connect(
    client: &redis::Client,
    response: Duration,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// The publishing connection: reconnects by itself in the background after a failed command.
pub(crate) fn publisher(client: &redis::Client) -> crate::Result<redis::aio::ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
    client
        .get_connection_manager_lazy(config)
        .map_err(crate::Error::layer)
}

/// An I/O-kind Redis error for a connection we gave up on (a deadline passed, the stream ended).
pub(crate) fn broken(what: &'static str) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::BrokenPipe, what))
}
