//! The crate's error type, the exit codes, and [`usage`]: what went wrong before or during a run,
//! and which exit code it earns.

/// Exit code when every threshold passed.
pub const EXIT_PASS: u8 = 0;
/// Exit code when a threshold failed or the run was cut short by its duration bound.
pub const EXIT_FAIL: u8 = 1;
/// Exit code for usage and setup errors.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when a `--barrier` timed out: not every agent got ready (nothing was published).
pub const EXIT_BARRIER: u8 = 3;
/// Exit code when every threshold passed but the tester, not the server, set the pace (the run is
/// marked "tester limited", or a `--find-max` search was capped by the tester): the figures are a
/// lower bound of the server's, so a CI job must not read this as the server's pass.
pub const EXIT_TESTER_LIMITED: u8 = 4;
/// Exit code after Ctrl-C (a partial report is still printed).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Everything that can stop a run. Usage and setup errors exit with 2, a barrier timeout with 3
/// ([`Error::exit_code`], used by `main.rs`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad flag or flag combination.
    #[error("{0}")]
    Usage(String),
    /// A scenario file that cannot be read or does not validate.
    #[error("scenario {path}: {msg}")]
    Scenario {
        /// The file.
        path: String,
        /// What is wrong, naming the key.
        msg: String,
    },
    /// A threshold expression that does not parse or names an unknown metric.
    #[error("threshold {expr:?}: {msg}")]
    Threshold {
        /// The expression as given.
        expr: String,
        /// What is wrong.
        msg: String,
    },
    /// The machine cannot run the plan (fd or port limits); the message says what to change.
    #[error("{0}")]
    Limit(String),
    /// Starting the embedded server, reading tokens, writing reports.
    #[error("{0}")]
    Setup(String),
    /// `--barrier`: not every agent got ready within `--barrier-timeout` (exit 3).
    #[error("{0}")]
    Barrier(String),
    /// An I/O error outside a client connection.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The exit code this error earns: [`EXIT_BARRIER`] for a barrier timeout, so a
    /// launcher can tell missing agents from its own mistakes; [`EXIT_USAGE`] otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Barrier(_) => EXIT_BARRIER,
            _ => EXIT_USAGE,
        }
    }
}

/// A usage error saying `msg`.
pub(crate) fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
