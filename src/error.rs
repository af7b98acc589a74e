//! The crate's error type.

/// Everything that can go wrong outside the per-frame hot path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting cannot work; the message names the flag.
    #[error("configuration: {0}")]
    Config(String),
    /// Socket or file I/O.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A group name Channels would reject (`^[a-zA-Z0-9\-_.]+$`, < 100 chars).
    #[error("invalid group name")]
    BadGroup,
    /// The channel layer could not publish (broker unreachable, …).
    #[error("channel layer: {0}")]
    Layer(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
