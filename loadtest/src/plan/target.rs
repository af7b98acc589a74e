//! Targets (embedded or a `ws://` URL), `--server-metrics` endpoints and token sources: URL
//! parsing, resolution, the loopback-only rule; and the even spread of slow readers over
//! connection indexes.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use tokio_tungstenite::tungstenite::http::Uri;

use crate::error::{usage, Result};

/// Where the clients connect.
#[derive(Debug, Clone)]
pub enum Target {
    /// A courier started in this process on 127.0.0.1:0 with a generated secret.
    Embedded {
        /// Outbound queue limit per connection, frames (`None`: courier's default).
        queue_messages: Option<usize>,
        /// Outbound queue limit per connection, bytes.
        queue_bytes: Option<usize>,
    },
    /// A server at a WebSocket URL.
    External(Endpoint),
}

/// How clients get tokens.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Mint simplejwt-format HS256 tokens with this secret.
    Mint(String),
    /// Tokens read from a file, one per user id.
    File(PathBuf),
}

/// A resolved external WebSocket endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The URL as given.
    pub url: String,
    /// The address connected to.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// Path (with no query).
    pub path: String,
}

/// Whether connection `i` is slow when a fraction `f` is: spread evenly over the range.
pub fn is_slow_index(i: usize, f: f64) -> bool {
    f > 0.0 && ((i + 1) as f64 * f).floor() > (i as f64 * f).floor()
}

/// Parses `ws://HOST[:PORT]/PATH`, resolves it and refuses non-loopback hosts unless allowed.
pub fn parse_target(text: &str, allow_remote: bool) -> Result<Endpoint> {
    parse_endpoint(text, "--target", "ws", "/ws/notifications/", allow_remote)
}

/// Parses `SCHEME://HOST[:PORT]/PATH` for `flag` (`wss`/`https` refused: the tester speaks plain
/// text to loopback), resolves it and refuses non-loopback hosts unless allowed.
pub fn parse_endpoint(
    text: &str,
    flag: &str,
    scheme: &str,
    default_path: &str,
    allow_remote: bool,
) -> Result<Endpoint> {
    let uri: Uri = text
        .parse()
        .map_err(|e| usage(format!("{flag} {text:?}: {e}")))?;
    match uri.scheme_str() {
        Some(s) if s == scheme => {}
        Some(s) if s == format!("{scheme}s") => {
            return Err(usage(format!(
                "{flag}: {s}:// is not supported (the tester speaks plain {scheme}:// to loopback)"
            )))
        }
        _ => {
            return Err(usage(format!(
                "{flag} {text:?}: expected {scheme}://HOST:PORT{default_path}"
            )))
        }
    }
    let host = uri
        .host()
        .ok_or_else(|| usage(format!("{flag} {text:?}: no host")))?;
    let port = uri.port_u16().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addr = match bare.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => (bare, port)
            .to_socket_addrs()
            .map_err(|e| usage(format!("{flag}: cannot resolve {host}: {e}")))?
            .next()
            .ok_or_else(|| usage(format!("{flag}: {host} has no address")))?,
    };
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(usage(format!(
            "{flag} {addr} is not a loopback address; load tests go to this machine only unless --allow-remote is given"
        )));
    }
    let path = match uri.path() {
        "" | "/" => default_path.to_owned(),
        p => p.to_owned(),
    };
    Ok(Endpoint {
        url: text.to_owned(),
        addr,
        host: format!("{host}:{port}"),
        path,
    })
}

/// Where to scrape.
#[derive(Debug, Clone)]
pub enum MetricsSource {
    /// The embedded server's own `/metrics`.
    Embedded,
    /// An `http://HOST:PORT/metrics` URL.
    Url(Endpoint),
}

impl MetricsSource {
    /// `embedded`, or an `http://` URL (loopback unless `allow_remote`).
    pub fn parse(text: &str, allow_remote: bool) -> Result<Self> {
        if text == "embedded" {
            return Ok(Self::Embedded);
        }
        parse_endpoint(text, "--server-metrics", "http", "/metrics", allow_remote).map(Self::Url)
    }

    /// The endpoint to scrape, given the embedded server's address when there is one.
    pub fn endpoint(&self, embedded: Option<std::net::SocketAddr>) -> Result<Option<Endpoint>> {
        match (self, embedded) {
            (Self::Url(ep), _) => Ok(Some(ep.clone())),
            (Self::Embedded, Some(addr)) => parse_endpoint(
                &format!("http://{addr}/metrics"),
                "--server-metrics",
                "http",
                "/metrics",
                false,
            )
            .map(Some),
            (Self::Embedded, None) => Ok(None),
        }
    }
}
