//! Trusted proxies: the address ranges (`--trusted-proxy`) whose `X-Forwarded-For` courier believes.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address range, `10.0.0.0/8` or `2001:db8::/32`; a bare address is its own range (/32, /128).
///
/// Parsed by hand rather than with `ipnet`: this type and [`Cidr::contains`] are all courier needs.
/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what a peer looks like on a dual-stack `[::]`
/// listener) is compared as the IPv4 address it carries, both in the range and in the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address, host bits cleared.
    net: IpAddr,
    /// Leading bits that must match.
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_v4(ip.to_bits(), self.prefix) == net.to_bits()
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_v6(ip.to_bits(), self.prefix) == net.to_bits()
            }
            _ => false,
        }
    }
}

/// `bits` with all but the first `prefix` bits cleared (`prefix` <= 32).
fn mask_v4(bits: u32, prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0) & bits
}

/// `bits` with all but the first `prefix` bits cleared (`prefix` <= 128).
fn mask_v6(bits: u128, prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0) & bits
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an address or CIDR range (10.0.0.0/8, 2001:db8::/32)");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip = addr.parse::<IpAddr>().map_err(|_| bad())?;
        let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            // `u8::from_str` takes a leading `+`; a prefix is digits only.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
            None => max,
        };
        // An IPv4-mapped range (`::ffff:10.0.0.0/104`) is the IPv4 range it maps.
        let (ip, prefix) = match ip {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (ip, prefix),
            },
            _ => (ip, prefix),
        };
        // Host bits are cleared rather than refused: `10.1.2.3/8` means the range it names.
        let net = match ip {
            IpAddr::V4(v4) => IpAddr::from(mask_v4(v4.to_bits(), prefix).to_be_bytes()),
            IpAddr::V6(v6) => IpAddr::from(mask_v6(v6.to_bits(), prefix).to_be_bytes()),
        };
        Ok(Self { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn ranges_parse_and_contain_what_they_name() {
        let lan: Cidr = "10.0.0.0/8".parse().expect("valid");
        assert!(lan.contains(ip("10.255.1.2")));
        assert!(!lan.contains(ip("11.0.0.1")));
        let host: Cidr = "127.0.0.1".parse().expect("a bare address");
        assert_eq!(host.to_string(), "127.0.0.1/32");
        assert!(host.contains(ip("127.0.0.1")) && !host.contains(ip("127.0.0.2")));
        let any: Cidr = "0.0.0.0/0".parse().expect("valid");
        assert!(any.contains(ip("203.0.113.9")) && !any.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8::/32".parse().expect("valid");
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let one: Cidr = "::1".parse().expect("valid");
        assert_eq!(one.to_string(), "::1/128");
        let all6: Cidr = "::/0".parse().expect("valid");
        assert!(all6.contains(ip("2001:db8::1")));
    }

    #[test]
    fn host_bits_are_cleared_and_mapped_addresses_are_ipv4() {
        let r: Cidr = "10.1.2.3/8".parse().expect("valid");
        assert_eq!(r.to_string(), "10.0.0.0/8");
        // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d.
        assert!(r.contains(ip("::ffff:10.9.9.9")));
        let mapped: Cidr = "::ffff:192.0.2.0/120".parse().expect("valid");
        assert_eq!(mapped.to_string(), "192.0.2.0/24");
        assert!(mapped.contains(ip("192.0.2.77")));
    }

    #[test]
    fn malformed_ranges_are_refused_with_their_text() {
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "host.example",
            "10.0.0.0/8/8",
            " 10.0.0.1",
        ] {
            let err = bad.parse::<Cidr>().expect_err(bad);
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
