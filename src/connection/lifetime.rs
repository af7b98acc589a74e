//! A connection's token lifetime (PROTOCOL.md §7): the close at `exp` plus the grace, and
//! `refresh` in place.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::time::Instant;

use crate::auth::UserId;
use crate::config::TokenExpiry;
use crate::metrics::Metrics;
use crate::protocol;
use crate::state::AppState;

/// When the connection's token runs out.
pub(super) struct Lifetime {
    /// The close deadline (`exp` + grace); `None`: tokens are not enforced after the handshake.
    pub(super) deadline: Option<Instant>,
}

impl Lifetime {
    /// The lifetime of a token whose `exp` is `exp` (Unix seconds).
    pub(super) fn new(state: &AppState, exp: f64) -> Self {
        let cfg = state.config();
        let deadline = (cfg.token_expiry == TokenExpiry::Enforce)
            .then(|| Instant::now().checked_add(until(exp) + cfg.token_grace))
            .flatten();
        Self { deadline }
    }

    /// Verifies a `refresh`'s token like a handshake's (signature, claims, the user directory)
    /// and that it names `user`; on success the deadline moves to its `exp` and the `refreshed`
    /// frame is returned. `Err` carries the reason the connection closes 4001 for (metrics).
    pub(super) async fn refresh(
        &mut self,
        state: &AppState,
        user: &UserId,
        token: &str,
    ) -> Result<Bytes, &'static str> {
        let result = verify(state, user, token).await;
        Metrics::inc(
            &state.metrics().refreshes,
            result.as_ref().map_or_else(|r| *r, |_| "ok"),
        );
        let exp = result?;
        if self.deadline.is_some() {
            *self = Self::new(state, exp);
        }
        Ok(protocol::refreshed(exp as u64))
    }
}

async fn verify(state: &AppState, user: &UserId, token: &str) -> Result<f64, &'static str> {
    let claims = state.verifier().verify(token).map_err(|e| e.reason())?;
    if claims.user_id != *user {
        return Err("other_user");
    }
    let lookup = state.directory().lookup(&claims);
    match tokio::time::timeout(state.config().handshake_timeout, lookup).await {
        Ok(Ok(_)) => Ok(claims.exp),
        Ok(Err(e)) => Err(e.reason()),
        Err(_) => Err("directory_error"),
    }
}

/// Longest a token's lifetime is honoured for; an `exp` further out (however large) means this.
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Time from now until Unix time `exp`: zero if past, at most [`MAX_LIFETIME`].
fn until(exp: f64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    match Duration::try_from_secs_f64(exp - now) {
        Ok(d) => d.min(MAX_LIFETIME),
        Err(_) if exp > now => MAX_LIFETIME,
        Err(_) => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_exp_gives_a_bounded_lifetime() {
        assert_eq!(until(0.0), Duration::ZERO);
        assert_eq!(until(f64::MAX), MAX_LIFETIME);
        assert_eq!(until(1e300), MAX_LIFETIME);
        let soon = until(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
                + 60.0,
        );
        assert!(soon > Duration::from_secs(58) && soon <= Duration::from_secs(60));
    }
}
