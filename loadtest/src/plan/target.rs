//! Targets (embedded or a `ws://`/`wss://` URL), `--server-metrics` endpoints and token sources:
//! URL parsing, resolution, the loopback-only rule, the run's TLS settings; and the even spread
//! of slow readers over connection indexes.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use tokio_rustls::rustls::pki_types::ServerName;
use tokio_tungstenite::tungstenite::http::Uri;

use crate::cli::TargetArgs;
use crate::error::{usage, Result};
use crate::net::{self, Peer, Tls, TlsClient};

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
    /// For `wss://`/`https://`: the name the certificate must carry (the URL's host).
    pub(crate) tls_name: Option<ServerName<'static>>,
}

impl Endpoint {
    /// Whether the URL is `wss://` or `https://`.
    pub fn is_tls(&self) -> bool {
        self.tls_name.is_some()
    }

    /// Where requests go, with the run's TLS settings for a TLS URL (the plan builds `tls`
    /// whenever one of its URLs is TLS).
    pub(crate) fn peer(&self, tls: Option<&TlsClient>) -> Peer {
        Peer {
            addr: self.addr,
            host: self.host.clone(),
            tls: self.tls(tls),
        }
    }

    /// TLS to this endpoint with the run's settings (`None` for a plain URL).
    pub(crate) fn tls(&self, tls: Option<&TlsClient>) -> Option<Tls> {
        Some(Tls {
            client: tls?.clone(),
            name: self.tls_name.clone()?,
        })
    }
}

/// The run's TLS client settings from `--ca-cert`/`--insecure`, when `used` (a URL is
/// `wss://`/`https://`); built once and shared by every connection. Either flag without a TLS URL,
/// or both together, is a usage error: each would silently mean nothing.
pub fn tls_client(t: &TargetArgs, used: bool) -> Result<Option<TlsClient>> {
    match (used, t.ca_cert.as_deref(), t.insecure) {
        (false, None, false) => Ok(None),
        (false, _, _) => Err(usage(
            "--ca-cert and --insecure apply to wss:// and https:// URLs; no URL of this run is one",
        )),
        (true, Some(_), true) => Err(usage(
            "give either --ca-cert (verify against this CA) or --insecure (verify nothing), not both",
        )),
        (true, ca, insecure) => TlsClient::new(ca, insecure).map(Some).map_err(usage),
    }
}

/// Whether connection `i` is slow when a fraction `f` is: spread evenly over the range.
pub fn is_slow_index(i: usize, f: f64) -> bool {
    f > 0.0 && ((i + 1) as f64 * f).floor() > (i as f64 * f).floor()
}

/// Parses `ws[s]://HOST[:PORT]/PATH`, resolves it and refuses non-loopback hosts unless allowed.
pub fn parse_target(text: &str, allow_remote: bool) -> Result<Endpoint> {
    parse_endpoint(text, "--target", "ws", "/ws/notifications/", allow_remote)
}

/// Parses `SCHEME://HOST[:PORT]/PATH` or its TLS form (`SCHEMEs://`, port 443 by default) for
/// `flag`, resolves it and refuses non-loopback hosts unless allowed.
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
    let tls = match uri.scheme_str() {
        Some(s) if s == scheme => false,
        Some(s) if s == format!("{scheme}s") => true,
        _ => {
            return Err(usage(format!(
                "{flag} {text:?}: expected {scheme}://HOST:PORT{default_path} (or {scheme}s://)"
            )))
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| usage(format!("{flag} {text:?}: no host")))?;
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tls_name = match tls {
        true => Some(net::server_name(host).map_err(|e| usage(format!("{flag}: {e}")))?),
        false => None,
    };
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
        tls_name,
    })
}

/// Where to scrape.
#[derive(Debug, Clone)]
pub enum MetricsSource {
    /// The embedded server's own `/metrics`.
    Embedded,
    /// An `http(s)://HOST:PORT/metrics` URL.
    Url(Endpoint),
}

impl MetricsSource {
    /// `embedded`, or an `http://`/`https://` URL (loopback unless `allow_remote`).
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
