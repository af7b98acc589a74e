//! Who a verified token belongs to: the pluggable user directory.
//!
//! The reference loads `User.objects.get(id=user_id)` after verifying the token. The default
//! [`TokenDirectory`] trusts a valid token (no database round trip per handshake); database-backed
//! directories plug in behind the same trait.

use futures::future::BoxFuture;

use crate::auth::{AuthError, Claims, UserId};

/// A user allowed to connect.
#[derive(Debug, Clone)]
pub struct User {
    /// The id; the connection joins group `user_{id}`.
    pub id: UserId,
    /// Shown in `connection_established` as `Connected as <username>`.
    pub username: String,
}

/// Resolves verified claims to a user, or refuses them (unknown or inactive → 4001).
pub trait UserDirectory: Send + Sync + 'static {
    /// Looks up the bearer of `claims`.
    fn lookup<'a>(&'a self, claims: &'a Claims) -> BoxFuture<'a, Result<User, AuthError>>;

    /// Which of `ids` (connected users) may no longer connect — deleted or deactivated since they
    /// did — asked in batches, not one query per user. The default (a directory that trusts
    /// tokens) refuses no one; `Err` when the directory cannot answer (nobody is closed then).
    fn refused_among<'a>(
        &'a self,
        _ids: &'a [UserId],
    ) -> BoxFuture<'a, Result<Vec<UserId>, AuthError>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    /// How often connected users should be re-checked; `None`: never (tokens are trusted).
    fn recheck_every(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The default directory: every validly signed access token is a user; the username comes from a
/// `username` claim when present, else the id as text.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokenDirectory;

impl UserDirectory for TokenDirectory {
    fn lookup<'a>(&'a self, claims: &'a Claims) -> BoxFuture<'a, Result<User, AuthError>> {
        let user = User {
            id: claims.user_id.clone(),
            username: claims
                .username
                .clone()
                .unwrap_or_else(|| claims.user_id.to_string()),
        };
        Box::pin(std::future::ready(Ok(user)))
    }
}
