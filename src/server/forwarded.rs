//! The client's address behind trusted proxies: the right-most `X-Forwarded-For` entry that is
//! not itself a trusted proxy.
//!
//! Each proxy appends the address it received the request from, so the entries an attacker can
//! write all sit left of the one the first trusted proxy wrote. Walking from the right and
//! stopping at the first address outside `--trusted-proxy` therefore gives the nearest client no
//! trusted hop vouches beyond — never a value the client chose, however many headers or entries
//! it sends. Several `X-Forwarded-For` fields count as one comma-joined list, in order (RFC 9110
//! §5.3). When every entry is trusted, the left-most is the client.
//!
//! Only a peer inside `--trusted-proxy` is asked at all; from any other peer the header is
//! ignored. `X-Real-IP` and `Forwarded` (RFC 7239) are ignored: `X-Real-IP` holds one address and
//! cannot show a chain, so a proxy that passes the client's own value through would make it
//! spoofable, and every proxy that sets either can set `X-Forwarded-For` (nginx:
//! `$proxy_add_x_forwarded_for`). A header a trusted peer sent that cannot be read (not ASCII, an
//! empty or non-address entry) is counted in `courier_forwarded_invalid_total`, and the peer's
//! address is used.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::http::{HeaderMap, HeaderName};

use crate::config::Cidr;
use crate::state::AppState;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// `X-Forwarded-For` from a trusted peer that could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Malformed;

/// The client address of a request from `peer` (canonical: an IPv4-mapped address is IPv4), for
/// the per-IP limit and logs; a malformed header is counted and the peer used.
pub(super) fn client_addr(state: &AppState, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let trusted = &state.config().trusted_proxies;
    resolve(peer, trusted, headers).unwrap_or_else(|Malformed| {
        state.metrics().forwarded_invalid.inc();
        tracing::info!(%peer, "unreadable X-Forwarded-For from a trusted proxy; using the peer");
        peer.to_canonical()
    })
}

/// [`client_addr`]'s rule, without the counting.
pub(super) fn resolve(
    peer: IpAddr,
    trusted: &[Cidr],
    headers: &HeaderMap,
) -> Result<IpAddr, Malformed> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(client) {
        return Ok(client);
    }
    for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        let text = value.to_str().map_err(|_| Malformed)?;
        for entry in text.rsplit(',') {
            client = parse_entry(entry).ok_or(Malformed)?;
            if !is_trusted(client) {
                return Ok(client);
            }
        }
    }
    Ok(client)
}

/// One list entry: an address, optionally with a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`)
/// or in brackets (`[2001:db8::1]`), as some proxies write them; spaces and tabs around it are
/// the list's.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim_matches([' ', '\t']);
    let ip = match entry.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => match entry.parse::<SocketAddr>() {
            Ok(sa) => sa.ip(),
            Err(_) => IpAddr::V6(
                entry
                    .strip_prefix('[')?
                    .strip_suffix(']')?
                    .parse::<Ipv6Addr>()
                    .ok()?,
            ),
        },
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                "x-forwarded-for",
                HeaderValue::from_bytes(v).expect("header"),
            );
        }
        h
    }

    /// The proxy at 10.0.0.5 (trusted as 10.0.0.0/8), asked about `values`.
    fn via_proxy(values: &[&[u8]]) -> Result<IpAddr, Malformed> {
        let trusted = ["10.0.0.0/8".parse().expect("cidr")];
        resolve(ip("10.0.0.5"), &trusted, &headers(values))
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_others_are_not_believed() {
        assert_eq!(via_proxy(&[b"203.0.113.7"]), Ok(ip("203.0.113.7")));
        // No header from a trusted peer (a health check): the peer itself.
        assert_eq!(via_proxy(&[]), Ok(ip("10.0.0.5")));
        // The header from an untrusted peer is the client's own claim: ignored, even garbage.
        let trusted = ["10.0.0.0/8".parse().expect("cidr")];
        let spoof = headers(&[b"198.51.100.1", b"not an address"]);
        assert_eq!(
            resolve(ip("203.0.113.7"), &trusted, &spoof),
            Ok(ip("203.0.113.7"))
        );
        // Nothing trusted (the default): the header is never read.
        assert_eq!(resolve(ip("10.0.0.5"), &[], &spoof), Ok(ip("10.0.0.5")));
    }

    #[test]
    fn what_the_client_wrote_before_the_proxy_entry_is_not_believed() {
        // The client sent `X-Forwarded-For: 198.51.100.1`; the proxy appended the real address.
        assert_eq!(
            via_proxy(&[b"198.51.100.1, 203.0.113.7"]),
            Ok(ip("203.0.113.7"))
        );
        // The same as separate fields (a proxy that adds its own field), and with garbage or an
        // empty entry on the client's side: never reached.
        assert_eq!(
            via_proxy(&[b"198.51.100.1", b"203.0.113.7"]),
            Ok(ip("203.0.113.7"))
        );
        assert_eq!(
            via_proxy(&[b"<script>, ,unknown,203.0.113.7"]),
            Ok(ip("203.0.113.7"))
        );
        assert_eq!(
            via_proxy(&[b"\xff\xfe", b"203.0.113.7"]),
            Ok(ip("203.0.113.7"))
        );
        // A client claiming a trusted address is walked past to the address the proxy saw.
        assert_eq!(
            via_proxy(&[b"10.1.1.1, 203.0.113.7"]),
            Ok(ip("203.0.113.7"))
        );
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        // CDN edge 10.2.0.1 → load balancer 10.0.0.9 → nginx (the peer).
        assert_eq!(
            via_proxy(&[b"198.51.100.1, 203.0.113.7, 10.2.0.1, 10.0.0.9"]),
            Ok(ip("203.0.113.7"))
        );
        // All trusted: the left-most is the origin.
        assert_eq!(via_proxy(&[b"10.3.3.3, 10.0.0.9"]), Ok(ip("10.3.3.3")));
    }

    #[test]
    fn ipv6_ports_brackets_and_mapped_addresses_are_read() {
        assert_eq!(via_proxy(&[b"2001:db8::7"]), Ok(ip("2001:db8::7")));
        assert_eq!(via_proxy(&[b"[2001:db8::7]"]), Ok(ip("2001:db8::7")));
        assert_eq!(via_proxy(&[b"[2001:db8::7]:4711"]), Ok(ip("2001:db8::7")));
        assert_eq!(via_proxy(&[b"203.0.113.7:4711"]), Ok(ip("203.0.113.7")));
        assert_eq!(
            via_proxy(&[b"\t::ffff:203.0.113.7 "]),
            Ok(ip("203.0.113.7"))
        );
        // A dual-stack listener sees the proxy as ::ffff:10.0.0.5: still trusted.
        let trusted = ["10.0.0.0/8".parse().expect("cidr")];
        let h = headers(&[b"2001:db8::7"]);
        assert_eq!(
            resolve(ip("::ffff:10.0.0.5"), &trusted, &h),
            Ok(ip("2001:db8::7"))
        );
        let v6_proxy = ["fd00::/8".parse().expect("cidr")];
        assert_eq!(resolve(ip("fd00::1"), &v6_proxy, &h), Ok(ip("2001:db8::7")));
    }

    #[test]
    fn an_unreadable_entry_from_the_trusted_side_is_malformed() {
        for bad in [
            &b""[..],
            b"unknown",
            b"203.0.113.7,",
            b"203.0.113.7, , 10.0.0.9",
            b"203.0.113.7 10.0.0.9",
            b"2001:db8::7:4711:x",
            b"[203.0.113.7]",
            b"203.0.113.7:99999",
            b"\xc3\xa9",
        ] {
            assert_eq!(
                via_proxy(&[bad]),
                Err(Malformed),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // A good right-most field does not save a bad one after it.
        assert_eq!(via_proxy(&[b"203.0.113.7", b"garbage"]), Err(Malformed));
    }
}
