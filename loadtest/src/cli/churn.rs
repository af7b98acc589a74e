//! The client-behaviour flags of a run: connections that drop and come back (churn), and tokens
//! that expire and are refreshed in place. Clap only; `plan::churn` validates them.

use clap::ValueEnum;

/// How a churning connection leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChurnMode {
    /// A WebSocket close 1000, then the TCP close (a tab closed).
    Close,
    /// An abrupt TCP reset, no close frame (a process killed, a NAT entry dropped).
    Reset,
    /// Stop reading for `--churn-stall`, then reset (a phone entering a tunnel).
    Stall,
}

impl ChurnMode {
    /// The flag spelling, for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Close => "close",
            Self::Reset => "reset",
            Self::Stall => "stall",
        }
    }
}

/// `on`/`off` for `--churn-resume`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// Churn and token-refresh flags (scenario `[churn]`, `[clients] token_lifetime`/`refresh_before`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ChurnArgs {
    /// Fraction of the healthy connections that drop and reconnect, 0 < F ≤ 1 (0: no churn).
    #[arg(long, value_name = "F")]
    pub churn_fraction: Option<f64>,
    /// Each churning connection drops once per this period while events are published, e.g. `3s`.
    #[arg(long, value_name = "DURATION")]
    pub churn_every: Option<String>,
    /// Time away before reconnecting, uniform in `MIN..MAX` (or one value), e.g. `500ms..2s`.
    #[arg(long, value_name = "MIN..MAX")]
    pub churn_away: Option<String>,
    /// How a connection drops.
    #[arg(long, value_enum)]
    pub churn_mode: Option<ChurnMode>,
    /// `--churn-mode stall`: how long the connection stops reading before the reset, e.g. `1s`.
    #[arg(long, value_name = "DURATION")]
    pub churn_stall: Option<String>,
    /// Reconnect with the last position (`since`/`epoch`), or without (the reference's behaviour).
    #[arg(long, value_enum)]
    pub churn_resume: Option<Switch>,
    /// Another server to reconnect to (repeatable): reconnects go round-robin over `--target`
    /// and these (processes sharing history, e.g. `--layer redis-pubsub`).
    #[arg(long = "reconnect-target", value_name = "URL")]
    pub reconnect_targets: Vec<String>,
    /// Lifetime of the minted tokens (default 1h), e.g. `30s`: with `--refresh-before`, every
    /// connection refreshes its token in place before `exp`.
    #[arg(long, value_name = "DURATION")]
    pub token_lifetime: Option<String>,
    /// Send `{"type":"refresh"}` with a new token this long before the current one's `exp`.
    #[arg(long, value_name = "DURATION")]
    pub refresh_before: Option<String>,
}
