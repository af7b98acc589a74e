//! The subcommands' arguments (clap only, no logic): `capacity`, `compare`, `ab`, `conform`,
//! `merge`, `trace-gen`.

use std::path::PathBuf;

use super::{OutputArgs, PublisherKind, TargetArgs};

/// Default target CPU and memory utilisation: half, to absorb bursts, reconnect storms and a lost peer.
pub const DEFAULT_UTILISATION: f64 = 0.5;
/// Default resident memory of an idle courier process before any connection, MiB.
pub const DEFAULT_PROCESS_BASE_MIB: f64 = 16.0;
/// courier's default incoming frame limit (PROTOCOL.md §4: 64 KiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;

/// `loadtest ab --a 'CMD' --b 'CMD' [--rounds N] --scenario S [-- loadtest flags…]`.
#[derive(Debug, Clone, clap::Args)]
pub struct AbOpts {
    /// Server A (the reference), a shell command; `{port}` is replaced by a free port.
    #[arg(long = "a")]
    pub a: String,
    /// Server B (the candidate), likewise.
    #[arg(long = "b")]
    pub b: String,
    /// Measured rounds (each runs A and B once, the order alternating).
    #[arg(long, default_value_t = 6)]
    pub rounds: usize,
    /// Scenario for every run.
    #[arg(long, short = 's')]
    pub scenario: Option<PathBuf>,
    /// The secret both commands were given (`--jwt-secret`), to mint tokens.
    #[arg(long, env = "LOADTEST_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
    /// The API key both commands were given, for the HTTP publisher.
    #[arg(long, env = "LOADTEST_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Metric to judge (repeatable; default deliveries_per_sec, p99_ms, server_ns_per_delivery).
    #[arg(long = "metric", short = 'm')]
    pub metrics: Vec<String>,
    /// Smallest change that counts, as a fraction of A (0.05 = 5 %).
    #[arg(long, default_value_t = 0.05)]
    pub threshold: f64,
    /// Confidence of the bootstrap interval.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// How long a command may take to accept connections, e.g. `10s`.
    #[arg(long, default_value = "10s")]
    pub start_timeout: String,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Flags for every run (after `--`), e.g. `-- -c 2000 -u 200`.
    #[arg(last = true)]
    pub run_args: Vec<String>,
}

/// `loadtest capacity --from REPORT.json --connections N --events-per-sec R [--fanout F]`.
#[derive(Debug, Clone, clap::Args)]
pub struct CapacityOpts {
    /// A JSON report (`loadtest --json PATH`) with server CPU and RSS (embedded or --server-pid).
    #[arg(long)]
    pub from: PathBuf,
    /// Concurrent WebSocket connections to serve.
    #[arg(long)]
    pub connections: u64,
    /// Events (group sends) per second at peak.
    #[arg(long)]
    pub events_per_sec: f64,
    /// Connections each event reaches (default: the report's connections per user).
    #[arg(long)]
    pub fanout: Option<f64>,
    /// Target utilisation of CPU and memory, 0 < U ≤ 1.
    #[arg(long, default_value_t = DEFAULT_UTILISATION)]
    pub utilisation: f64,
    /// Open-file limit of a courier process (default: this machine's hard RLIMIT_NOFILE).
    #[arg(long)]
    pub fd_limit: Option<u64>,
    /// Resident memory of an idle courier process, MiB.
    #[arg(long, default_value_t = DEFAULT_PROCESS_BASE_MIB)]
    pub process_base_mib: f64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `loadtest compare BASE.json NEW.json [-t EXPR]…`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareOpts {
    /// The baseline report (`--json` of an earlier run).
    pub base: PathBuf,
    /// The report to judge.
    pub new: PathBuf,
    /// Check on NEW, absolute (`lost==0`) or relative (`p99_ms<=1.2*baseline`); repeatable.
    #[arg(long = "threshold", short = 't')]
    pub thresholds: Vec<String>,
    /// Print the comparison and outcomes as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `loadtest conform --target ws://… (--jwt-secret S | --tokens-file F) [--api-key K]`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConformOpts {
    /// The server (`--target` is needed unless `--list`) and how to authenticate; `--jwt-secret`
    /// also mints the bad tokens.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Publish through Redis instead, as Django's channels_redis does (`redis-pubsub|redis-core`).
    #[arg(long, value_enum)]
    pub publisher: Option<PublisherKind>,
    /// Redis for `--publisher redis-…`.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// channels_redis prefix for `--publisher redis-…` (default `asgi`).
    #[arg(long)]
    pub redis_prefix: Option<String>,
    /// Longest wait for one expected frame or close, e.g. `2s`.
    #[arg(long)]
    pub wait: Option<String>,
    /// The server's incoming frame limit, bytes (the oversized frame is 1 KiB above it).
    #[arg(long, default_value_t = DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,
    /// `expiry_close`: how long past a 2-second token's `exp` to wait for the server's 4001, e.g.
    /// `35s` (at least the server's token grace: courier's default is 30s). Without it that
    /// check is skipped as not run.
    #[arg(long, value_name = "DURATION")]
    pub expiry_wait: Option<String>,
    /// Run only these checks (comma-separated names; see `--list`).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Print the checks and exit.
    #[arg(long)]
    pub list: bool,
    /// Write a JUnit XML report here (one test case per check).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `loadtest merge REPORT.json… [-t EXPR…] [--json P] [--junit P] [--html P] [--markdown P]
/// [--print-json]`.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeOpts {
    /// JSON reports (`loadtest --segment K/N --json PATH`), one per segment.
    #[arg(required = true, value_name = "REPORT.json")]
    pub reports: Vec<PathBuf>,
    /// Thresholds on the merged report (default: the segments' own) and its outputs.
    #[command(flatten)]
    pub outputs: OutputArgs,
}

/// `loadtest trace-gen --out FILE [shape flags]`: a synthetic publish trace in courier's format
/// (a diurnal curve plus a push spike), deterministic for a seed. Defaults make
/// `scenarios/sample-trace.jsonl`.
#[derive(Debug, Clone, clap::Args)]
pub struct TraceGenOpts {
    /// Where to write the JSONL trace.
    #[arg(long)]
    pub out: PathBuf,
    /// Distinct users (`user_1` … `user_N`); a few heavy users get most events.
    #[arg(long, default_value_t = 200)]
    pub users: u32,
    /// Length of the trace: one compressed "day", e.g. `90s`.
    #[arg(long, default_value = "90s")]
    pub duration: String,
    /// Mean events/s of the diurnal curve over the day.
    #[arg(long, default_value_t = 12.0)]
    pub mean_rate: f64,
    /// Swing of the curve around the mean, 0 ≤ A < 1: trough (1 − A)·mean at the start and end,
    /// peak (1 + A)·mean at midday.
    #[arg(long, default_value_t = 0.8)]
    pub amplitude: f64,
    /// Start of the push spike, from the trace's start, e.g. `60s`.
    #[arg(long, default_value = "60s")]
    pub spike_at: String,
    /// How long the push takes to go out, e.g. `2s`.
    #[arg(long, default_value = "2s")]
    pub spike_length: String,
    /// Fraction of the users the push reaches (one event each), 0–1.
    #[arg(long, default_value_t = 1.0)]
    pub spike_users: f64,
    /// Random seed: the same flags and seed write the same file.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}
