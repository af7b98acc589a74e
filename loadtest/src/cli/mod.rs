//! Command-line options: every clap struct and value enum, and no logic (uv's `uv-cli`, ripgrep's
//! low-level arguments). Every value that a scenario can set is optional here: a flag given
//! overrides the scenario, an absent one leaves it alone ([`crate::plan::Plan::from_opts`] decides).

mod churn;
mod commands;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub use churn::{ChurnArgs, ChurnMode, Switch};
pub use commands::{AbOpts, CapacityOpts, CompareOpts, ConformOpts, MergeOpts, TraceGenOpts};

/// How events reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PublisherKind {
    /// In-process `Hub::notify_user` on the embedded server (needs the embedded target).
    Embedded,
    /// `POST /api/notify` batches with `X-API-Key`.
    Http,
    /// What Django's `group_send` writes with channels_redis's `RedisPubSubChannelLayer`.
    RedisPubsub,
    /// What Django's `group_send` writes with channels_redis's `RedisChannelLayer` (Lua + ZADD).
    RedisCore,
}

impl PublisherKind {
    /// The flag spelling (`redis-core`), for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Http => "http",
            Self::RedisPubsub => "redis-pubsub",
            Self::RedisCore => "redis-core",
        }
    }
}

/// The embedded server's channel layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServerLayer {
    /// In-process only.
    Memory,
    /// channels_redis pub/sub wire format.
    RedisPubsub,
    /// channels_redis core wire format.
    RedisCore,
}

/// Subcommands; without one, `loadtest [flags]` runs a scenario.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Size a deployment from a JSON report: cores, memory and processes.
    Capacity(CapacityOpts),
    /// Compare two JSON reports side by side; exit 1 when a threshold on the second fails.
    Compare(CompareOpts),
    /// A/B: start two server commands, run interleaved rounds against each, judge B against A.
    Ab(AbOpts),
    /// Check a server against the protocol (PROTOCOL.md): PASS/FAIL per check; exit 1 on a failure.
    Conform(ConformOpts),
    /// Add up the JSON reports of a run's segments exactly and judge the whole.
    Merge(MergeOpts),
    /// Write a synthetic publish trace (diurnal curve + push spike) for `--model replay`.
    TraceGen(TraceGenOpts),
}

/// When events are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Model {
    /// B bursts of M events per user, each burst as fast as possible: throughput.
    Burst,
    /// An open model: events/s on a fixed schedule: latency under a known load.
    Rate,
    /// An open model: a recorded publish trace (`--trace`) at `--replay-speed`.
    Replay,
}

/// The server under test and how to authenticate: a run's flags and `loadtest conform`'s.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArgs {
    /// The server, `ws://HOST:PORT/ws/notifications/` or `wss://…` (a run: or `embedded`, the
    /// default).
    #[arg(
        id = "target",
        long = "target",
        value_name = "URL",
        env = "LOADTEST_TARGET"
    )]
    pub url: Option<String>,
    /// HS256 secret (Django's SECRET_KEY) to mint simplejwt-format tokens for an external server.
    #[arg(long, env = "LOADTEST_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// JSON file mapping user id → token, instead of minting (`conform`: at least three users;
    /// its expired/refresh checks skip).
    #[arg(long)]
    pub tokens_file: Option<PathBuf>,
    /// `X-API-Key` for the HTTP publisher (`POST /api/notify`, `/api/group_send`).
    #[arg(long, env = "LOADTEST_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The HTTP publisher's server, `http[s]://HOST:PORT`, when it is not the target's: the usual
    /// deployment keeps the publish API off the proxy clients connect through (docs/deploy.md).
    #[arg(long, value_name = "URL", env = "LOADTEST_PUBLISH_URL")]
    pub publish_url: Option<String>,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// `wss://`/`https://`: trust only the CA certificates of this PEM file (one or more) instead
    /// of the built-in Mozilla roots (a private CA, a test nginx).
    #[arg(long, value_name = "FILE", env = "LOADTEST_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// `wss://`/`https://`: accept any certificate for any name. Every report says so.
    #[arg(long)]
    pub insecure: bool,
}

/// Thresholds and outputs of a report: a run's flags and `loadtest merge`'s.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OutputArgs {
    /// Pass/fail check, e.g. `p99_ms<5`, `lost==0`, `deliveries_per_sec>1000000` (repeatable; a
    /// run adds them to the scenario's, `merge` uses them instead of the segments' own).
    #[arg(long = "threshold", short = 't')]
    pub thresholds: Vec<String>,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a JUnit XML report here (one test case per threshold).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write a self-contained HTML report (latency curve, deliveries/s over time) here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Write a Markdown summary here (for a CI job page, e.g. `$GITHUB_STEP_SUMMARY`).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Print the JSON report to stdout instead of the text summary.
    #[arg(long)]
    pub print_json: bool,
}

/// `loadtest`: thousands of authenticated WebSocket clients, `group_send` bursts, exact loss
/// accounting and latency from the intended send time. With no arguments it starts an embedded
/// courier and runs the default scenario.
#[derive(Debug, Clone, Default, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
pub struct Opts {
    /// `capacity`: plan a deployment from a report instead of running.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Scenario TOML file (see loadtest/scenarios/); flags override its values.
    #[arg(long, short = 's')]
    pub scenario: Option<PathBuf>,
    /// The server and how to authenticate.
    #[command(flatten)]
    pub target: TargetArgs,
    /// PID of an external server, to report its RSS and CPU.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Run only the K-th of N disjoint slices of the scenario (users, their connections and
    /// events), e.g. `2/3`; add the reports up with `loadtest merge`.
    #[arg(long, value_name = "K/N")]
    pub segment: Option<String>,
    /// Start publishing at this instant, unix milliseconds (the same for every segment).
    #[arg(long, value_name = "UNIX_MS")]
    pub start_at: Option<u64>,
    /// Meet the run's other agents in this Redis (`redis://HOST:PORT[/DB]`) after connecting and
    /// start publishing together, once all `--agents` are ready (instead of `--start-at`).
    #[arg(long, value_name = "URL", conflicts_with = "start_at")]
    pub barrier: Option<String>,
    /// `--barrier`: tester processes in the run (= N of `--segment K/N`; without `--segment`
    /// each agent takes the first free segment).
    #[arg(long, value_name = "N", requires = "barrier")]
    pub agents: Option<usize>,
    /// `--barrier`: names the run's keys; fresh for every launch (a used id is refused).
    #[arg(long, value_name = "ID", requires = "barrier")]
    pub run_id: Option<String>,
    /// `--barrier`: longest wait, once this agent is ready, for the others (default 30s; then
    /// exit 3).
    #[arg(long, value_name = "DURATION", requires = "barrier")]
    pub barrier_timeout: Option<String>,
    /// courier's Prometheus endpoint (`http://HOST:PORT/metrics`, or `embedded`): scraped before
    /// and after the run, its counters reported beside the tester's and mismatches flagged.
    #[arg(long)]
    pub server_metrics: Option<String>,
    /// Serve the tester's own Prometheus `/metrics` here while it runs (`IP:PORT`; port 0 picks
    /// one, printed on stderr): connections, deliveries, latency histogram, loss, errors.
    #[arg(long, value_name = "IP:PORT", env = "LOADTEST_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// `--metrics-listen`: keep serving the final figures this long after the report (e.g.
    /// `30s`, at least the scrape interval; default 0s).
    #[arg(long, value_name = "DURATION")]
    pub metrics_linger: Option<String>,

    /// WebSocket connections.
    #[arg(long, short = 'c')]
    pub connections: Option<usize>,
    /// Distinct users (connections per user = connections / users).
    #[arg(long, short = 'u')]
    pub users: Option<usize>,
    /// Connections started per second (0 = unpaced).
    #[arg(long)]
    pub ramp_rate: Option<f64>,
    /// Handshakes in flight at once.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Bound on one connect + handshake + first frame, e.g. `5s`.
    #[arg(long)]
    pub connect_timeout: Option<String>,
    /// Spread client sockets over 127.0.0.1…127.0.0.N (IPv4 loopback targets).
    #[arg(long)]
    pub source_addrs: Option<u8>,
    /// Fraction of connections that stop reading (0.0–1.0).
    #[arg(long)]
    pub slow_fraction: Option<f64>,

    /// Publisher.
    #[arg(long, value_enum)]
    pub publisher: Option<PublisherKind>,
    /// Arrival model.
    #[arg(long, value_enum)]
    pub model: Option<Model>,
    /// Burst model: number of bursts.
    #[arg(long)]
    pub bursts: Option<u64>,
    /// Burst model: events per user per burst.
    #[arg(long)]
    pub events_per_burst: Option<u64>,
    /// Burst model: time between burst starts, e.g. `100ms`.
    #[arg(long)]
    pub burst_interval: Option<String>,
    /// Rate model: events per second over all users.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Rate model: how long to publish, e.g. `10s`.
    #[arg(long)]
    pub rate_duration: Option<String>,
    /// Replay model: courier's publish trace (`--trace-publishes`, JSONL); repeat for a rotated
    /// pair (`--trace F.1 --trace F`) or several servers' traces (merged by time).
    #[arg(long, value_name = "FILE")]
    pub trace: Vec<PathBuf>,
    /// Replay model: time runs this many times faster than recorded (default 1).
    #[arg(long, value_name = "X")]
    pub replay_speed: Option<f64>,
    /// Redis publishers (and the embedded server's Redis layer): `redis://host:port[/db]`, or a
    /// comma-separated list: channels_redis `hosts`, in Django's order.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Redis publishers: channels_redis `prefix` (default `asgi`).
    #[arg(long)]
    pub redis_prefix: Option<String>,
    /// Embedded server's channel layer (default: the Redis publisher's, else memory).
    #[arg(long, value_enum)]
    pub server_layer: Option<ServerLayer>,
    /// HTTP and Redis publishers: notifications per request / pipeline.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Padding bytes added to each event's data.
    #[arg(long)]
    pub payload_bytes: Option<usize>,

    /// Connections that drop and come back, and token refresh.
    #[command(flatten)]
    pub churn: ChurnArgs,

    /// Hard bound on the whole run, e.g. `60s`; the run stops and reports when it is reached.
    #[arg(long)]
    pub duration: Option<String>,
    /// How long to wait for missing events after the last publish.
    #[arg(long)]
    pub drain_timeout: Option<String>,

    /// Thresholds and where the report goes.
    #[command(flatten)]
    pub outputs: OutputArgs,
    /// A previous `--json` report: its figures go beside this run's and `-t` may say `0.9*baseline`.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Capacity search: `connections` (the default) steps the count up until a threshold fails;
    /// `rate` finds the highest event rate at which every threshold holds (bracket, then bisect);
    /// `speed`, the fastest `--replay-speed` of a replay, likewise.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "connections")]
    pub find_max: Option<crate::schema::SearchOver>,
    /// `--find-max connections`: connections added per step (default: the starting count).
    #[arg(long)]
    pub step: Option<usize>,
    /// `--find-max connections`: never go above this many connections.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// `--find-max rate`: never try more events/s than this.
    #[arg(long)]
    pub max_rate: Option<f64>,
    /// `--find-max speed`: never replay faster than this (default 1000).
    #[arg(long)]
    pub max_speed: Option<f64>,
    /// `--find-max rate|speed`: stop bisecting when the failing value is within this fraction of
    /// the passing one (default 0.05).
    #[arg(long)]
    pub precision: Option<f64>,
    /// `--find-max rate|speed`: at most this many runs (default 12).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Run the plan N times; the report gives every metric's median and min..max, and the
    /// thresholds judge the medians.
    #[arg(long)]
    pub repeat: Option<usize>,
    /// No live progress bar even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}
