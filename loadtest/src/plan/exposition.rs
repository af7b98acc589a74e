//! `--metrics-listen` and `--metrics-linger`: where the tester serves its own Prometheus
//! endpoint, and how long it keeps serving the final figures after the run.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{usage, Result};

/// Default `--metrics-linger`: exit as soon as the report is out (a scraper that must see the
/// final figures asks for at least its scrape interval).
pub const DEFAULT_METRICS_LINGER: Duration = Duration::ZERO;

/// The endpoint a run serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsListen {
    /// Where to listen (port 0: any free port, printed on stderr).
    pub addr: SocketAddr,
    /// How long to keep serving the final figures after the report is written.
    pub linger: Duration,
}

impl MetricsListen {
    /// `--metrics-listen ADDR` (an `IP:PORT`; no name lookup before the run) and
    /// `--metrics-linger` (humantime); a linger without a listener is a usage error.
    pub fn parse(listen: Option<&str>, linger: Option<&str>) -> Result<Option<Self>> {
        let Some(text) = listen else {
            return match linger {
                Some(_) => Err(usage("--metrics-linger needs --metrics-listen")),
                None => Ok(None),
            };
        };
        let addr = text.trim().parse().map_err(|_| {
            usage(format!(
                "--metrics-listen {text:?}: not an IP:PORT (e.g. 127.0.0.1:9464, [::1]:9464 or 0.0.0.0:9464)"
            ))
        })?;
        let linger = match linger {
            None => DEFAULT_METRICS_LINGER,
            Some(s) => humantime::parse_duration(s)
                .map_err(|e| usage(format!("--metrics-linger {s:?}: {e}")))?,
        };
        Ok(Some(Self { addr, linger }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_and_a_linger_parse_and_bad_ones_say_why() {
        let m = MetricsListen::parse(Some("127.0.0.1:0"), Some("2s"))
            .expect("valid")
            .expect("on");
        assert_eq!(m.addr, "127.0.0.1:0".parse().expect("addr"));
        assert_eq!(m.linger, Duration::from_secs(2));
        assert_eq!(MetricsListen::parse(None, None).expect("off"), None);
        let err = |l: Option<&str>, g: Option<&str>| {
            MetricsListen::parse(l, g).expect_err("refused").to_string()
        };
        assert!(err(Some("localhost"), None).contains("not an IP:PORT"));
        assert!(err(Some("127.0.0.1:99999"), None).contains("not an IP:PORT"));
        assert!(err(Some("127.0.0.1:9464"), Some("soon")).contains("--metrics-linger"));
        assert!(err(None, Some("5s")).contains("needs --metrics-listen"));
    }
}
