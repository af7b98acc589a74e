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
    /// The channel layer could not publish (broker unreachable, a payload that does not encode, …).
    /// Keeps the cause, so a log line shows the Redis error underneath.
    #[error("channel layer: {0}")]
    Layer(#[source] BoxError),
}

/// Any error, boxed, as a cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Error {
    /// A layer failure caused by `cause`.
    pub fn layer(cause: impl Into<BoxError>) -> Self {
        Self::Layer(cause.into())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
