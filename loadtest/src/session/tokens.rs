//! Tokens for the clients: minted in simplejwt's format (HS256) or read from a JSON file.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, EncodingKey, Header};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::plan::DEFAULT_TOKEN_LIFETIME;

/// One token per user, indexed by user index (`0..users`).
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The user id of each user index.
    pub user_ids: Vec<u64>,
    /// The token of each user index.
    pub tokens: Vec<String>,
}

/// simplejwt's access-token claims; `user_id` is a string as in simplejwt ≥ 5.5.1.
#[derive(Serialize)]
struct Claims<'a> {
    token_type: &'a str,
    exp: u64,
    iat: u64,
    jti: String,
    user_id: String,
}

/// Which token to mint: a good one, or one the server must refuse (for `loadtest conform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A valid access token.
    Access,
    /// A refresh token (`token_type` = `refresh`): not for WebSockets.
    Refresh,
    /// An access token whose `exp` passed a minute ago.
    Expired,
}

/// Mints one HS256 token of `kind` for `user_id`, living [`DEFAULT_TOKEN_LIFETIME`].
pub fn mint_one(secret: &str, user_id: u64, kind: TokenKind) -> Result<String> {
    mint_for(secret, user_id, kind, DEFAULT_TOKEN_LIFETIME)
}

/// Mints one HS256 token of `kind` for `user_id` whose `exp` is `lifetime` from now (an
/// `Expired` one's passed a minute ago).
pub fn mint_for(secret: &str, user_id: u64, kind: TokenKind, lifetime: Duration) -> Result<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let life = lifetime.as_secs();
    let (token_type, iat, exp) = match kind {
        TokenKind::Access => ("access", now, now + life),
        TokenKind::Refresh => ("refresh", now, now + life),
        TokenKind::Expired => ("access", now.saturating_sub(360), now.saturating_sub(60)),
    };
    let claims = Claims {
        token_type,
        exp,
        iat,
        jti: uuid::Uuid::new_v4().simple().to_string(),
        user_id: user_id.to_string(),
    };
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| Error::Setup(format!("minting a token: {e}")))
}

/// Mints an HS256 token for each of `users` users with ids `first + 1..=first + users` (`first` is
/// the first user index of a `--segment`, else 0).
pub fn mint(secret: &str, first: usize, users: usize) -> Result<Tokens> {
    mint_with(secret, first, users, DEFAULT_TOKEN_LIFETIME)
}

/// [`mint`] with tokens living `lifetime`.
pub fn mint_with(secret: &str, first: usize, users: usize, lifetime: Duration) -> Result<Tokens> {
    let user_ids: Vec<u64> = (first as u64 + 1..=(first + users) as u64).collect();
    let tokens = user_ids
        .iter()
        .map(|id| mint_for(secret, *id, TokenKind::Access, lifetime))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tokens { user_ids, tokens })
}

/// Mints fresh access tokens during a run (for a refresh or a reconnect after `exp`).
#[derive(Debug, Clone)]
pub(crate) struct Minter {
    /// The secret.
    pub(crate) secret: String,
    /// Every user's id, by user index.
    pub(crate) user_ids: Arc<Vec<u64>>,
    /// Lifetime of each token.
    pub(crate) lifetime: Duration,
}

impl Minter {
    /// A fresh token for user index `user` (`None` if minting failed, which it does not for HS256).
    pub(crate) fn mint(&self, user: usize) -> Option<String> {
        let id = *self.user_ids.get(user)?;
        mint_for(&self.secret, id, TokenKind::Access, self.lifetime).ok()
    }
}

/// Reads `{"<user id>": "<token>", …}` and takes `users` ids in numeric order, skipping the
/// first `first` (a `--segment`'s slice of the file).
pub fn from_file(path: &Path, first: usize, users: usize) -> Result<Tokens> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Setup(format!("--tokens-file {shown}: {e}")))?;
    let map: BTreeMap<String, String> = serde_json::from_str(&text).map_err(|e| {
        Error::Setup(format!(
            "--tokens-file {shown}: expected a JSON object of id → token: {e}"
        ))
    })?;
    let mut pairs = map
        .into_iter()
        .map(|(k, v)| {
            k.trim().parse::<u64>().map(|id| (id, v)).map_err(|_| {
                Error::Setup(format!(
                    "--tokens-file {shown}: user id {k:?} is not an integer"
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    pairs.sort_by_key(|(id, _)| *id);
    if pairs.len() < first + users {
        return Err(Error::Setup(format!(
            "--tokens-file {shown} has {} tokens but the plan needs {} users",
            pairs.len(),
            first + users
        )));
    }
    pairs.truncate(first + users);
    pairs.drain(..first);
    let (user_ids, tokens) = pairs.into_iter().unzip();
    Ok(Tokens { user_ids, tokens })
}
