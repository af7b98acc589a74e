//! Scenario files: TOML that fixes a plan's values; every key is optional and unknown keys are errors.
//!
//! Flags override file values, file values override built-in defaults (see [`crate::plan`]).

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The built-in default scenario (`scenarios/default.toml`), used when no `--scenario` is given.
pub const DEFAULT_SCENARIO: &str = include_str!("../../scenarios/default.toml");

/// A parsed scenario file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, shown in the report.
    pub name: Option<String>,
    /// One line about what the scenario measures.
    pub description: Option<String>,
    /// Threshold expressions (`"p99_ms<5"`, `"lost==0"`) that decide pass or fail.
    #[serde(default)]
    pub thresholds: Vec<String>,
    /// Where to connect and the run's bounds.
    #[serde(default)]
    pub run: RunSection,
    /// The WebSocket clients.
    #[serde(default)]
    pub clients: ClientsSection,
    /// How events are published.
    #[serde(default)]
    pub publish: PublishSection,
    /// Settings for the embedded server only.
    #[serde(default)]
    pub server: ServerSection,
    /// Connections that drop and reconnect.
    #[serde(default)]
    pub churn: ChurnSection,
    /// Throttles that slow the tester on purpose (tests of the "tester limited" mark).
    #[serde(default)]
    pub diagnostics: DiagnosticsSection,
    /// The folder of the file it was read from: `publish.trace` is relative to it.
    #[serde(skip)]
    pub base_dir: Option<std::path::PathBuf>,
}

/// `[run]`: target and time bounds.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// `"embedded"` or `ws://HOST:PORT/ws/notifications/`.
    pub target: Option<String>,
    /// Hard bound on the whole run (humantime, e.g. `"60s"`).
    pub duration: Option<String>,
    /// How long clients wait for missing events after the last publish.
    pub drain_timeout: Option<String>,
}

/// `[clients]`: how many connections, for how many users, connected how fast.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientsSection {
    /// WebSocket connections.
    pub connections: Option<usize>,
    /// Distinct users; connection `i` belongs to user `i % users`.
    pub users: Option<usize>,
    /// Connections started per second (0 = as fast as concurrency allows).
    pub ramp_rate: Option<f64>,
    /// Handshakes in flight at once.
    pub concurrency: Option<usize>,
    /// Bound on one TCP connect + handshake + first frame.
    pub connect_timeout: Option<String>,
    /// Spread client sockets over 127.0.0.1 … 127.0.0.N (loopback IPv4 targets only).
    pub source_addrs: Option<u8>,
    /// Fraction of connections that stop reading (slow consumers), 0.0–1.0.
    pub slow_fraction: Option<f64>,
    /// Frames a slow connection reads before it stalls.
    pub slow_after: Option<u64>,
    /// Lifetime of the minted tokens (humantime; default 1h).
    pub token_lifetime: Option<String>,
    /// Refresh each connection's token in place this long before its `exp`.
    pub refresh_before: Option<String>,
}

/// `[churn]`: connections that drop and come back (see `--churn-*`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChurnSection {
    /// Fraction of the healthy connections that churn, 0 < F ≤ 1.
    pub fraction: Option<f64>,
    /// Each churning connection drops once per this period while events are published.
    pub every: Option<String>,
    /// Time away, `"MIN..MAX"` or one duration.
    pub away: Option<String>,
    /// `close`, `reset` or `stall`.
    pub mode: Option<String>,
    /// `stall` mode: how long the connection stops reading before the reset.
    pub stall: Option<String>,
    /// Reconnect with the last position (default true).
    pub resume: Option<bool>,
    /// Other servers to reconnect to, round-robin after `[run] target`.
    #[serde(default)]
    pub reconnect_targets: Vec<String>,
}

/// `[publish]`: publisher and arrival model.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSection {
    /// `embedded`, `http`, `redis-pubsub` or `redis-core`.
    pub publisher: Option<String>,
    /// `burst`, `rate` or `replay`.
    pub model: Option<String>,
    /// Burst model: number of bursts.
    pub bursts: Option<u64>,
    /// Burst model: events per user in each burst.
    pub events_per_burst: Option<u64>,
    /// Burst model: time between burst starts.
    pub burst_interval: Option<String>,
    /// Rate model: events per second over all users.
    pub rate: Option<f64>,
    /// Rate model: how long to publish.
    pub rate_duration: Option<String>,
    /// Replay model: a publish trace (courier `--trace-publishes`), relative to this file.
    pub trace: Option<String>,
    /// Replay model: time runs this many times faster than recorded (default 1).
    pub replay_speed: Option<f64>,
    /// HTTP publisher: notifications per `POST /api/notify`.
    pub batch: Option<usize>,
    /// HTTP and Redis publishers: requests in flight (users are partitioned over lanes, keeping
    /// order); default: sized from the rate ([`crate::plan::lanes_for`]).
    pub lanes: Option<usize>,
    /// Padding added to each event's data, bytes.
    pub payload_bytes: Option<usize>,
    /// Redis publishers (and the embedded server's Redis layer): `redis://host:port[/db]`, or a
    /// comma-separated list of hosts in Django's order.
    pub redis_url: Option<String>,
    /// Redis publishers: channels_redis `prefix`.
    pub redis_prefix: Option<String>,
}

/// `[diagnostics]`: throttles that make the tester the bottleneck on purpose, to test that the
/// report says so. Leave them out of real measurements.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticsSection {
    /// Added to every publish call, e.g. `20ms`: the publisher falls behind its schedule.
    pub publish_delay: Option<String>,
    /// CPU each delivery costs a receiver (a busy wait), e.g. `5ms`: the receive side saturates.
    pub receive_cost: Option<String>,
}

/// `[server]`: the embedded server's settings (ignored for `--target`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Outbound queue limit per connection, frames.
    pub queue_messages: Option<usize>,
    /// Outbound queue limit per connection, bytes.
    pub queue_bytes: Option<usize>,
    /// Channel layer: `memory`, `redis-pubsub` or `redis-core` (default: the publisher's).
    pub layer: Option<String>,
}

impl Scenario {
    /// Parses scenario text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Scenario {
            path: origin.to_owned(),
            msg: e.to_string().trim_end().to_owned(),
        })
    }

    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<Self> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Scenario {
            path: origin.clone(),
            msg: e.to_string(),
        })?;
        let mut s = Self::parse(&text, &origin)?;
        s.base_dir = path.parent().map(Path::to_path_buf);
        Ok(s)
    }

    /// The built-in default scenario.
    pub fn builtin_default() -> Result<Self> {
        Self::parse(DEFAULT_SCENARIO, "built-in default.toml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_sections() {
        let s = Scenario::parse(
            r#"
            name = "x"
            thresholds = ["lost==0"]
            [run]
            duration = "30s"
            [clients]
            connections = 10
            users = 5
            slow_fraction = 0.5
            [publish]
            model = "rate"
            rate = 100.0
            [server]
            queue_messages = 8
            "#,
            "t",
        )
        .expect("valid scenario");
        assert_eq!(s.clients.connections, Some(10));
        assert_eq!(s.publish.model.as_deref(), Some("rate"));
        assert_eq!(s.thresholds, vec!["lost==0"]);
        assert_eq!(s.server.queue_messages, Some(8));
    }

    #[test]
    fn rejects_unknown_keys_with_the_key_name() {
        let e =
            Scenario::parse("[clients]\nconections = 5\n", "bad.toml").expect_err("unknown key");
        let msg = e.to_string();
        assert!(
            msg.contains("bad.toml") && msg.contains("conections"),
            "{msg}"
        );
        assert!(Scenario::parse("colour = 1\n", "t").is_err());
    }

    #[test]
    fn rejects_wrong_types() {
        let e = Scenario::parse("[clients]\nconnections = \"many\"\n", "t").expect_err("type");
        assert!(e.to_string().contains("connections"), "{e}");
    }

    #[test]
    fn shipped_scenarios_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
        for entry in std::fs::read_dir(dir).expect("scenarios dir") {
            let path = entry.expect("entry").path();
            // The folder also holds a replay's sample trace.
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}
