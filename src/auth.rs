//! Token extraction and simplejwt-compatible access-token verification.
//!
//! The rules are djangorestframework-simplejwt 5.5's (PROTOCOL.md §1): signature with the configured
//! algorithm only, `token_type == "access"`, `jti` present, `exp` required with zero leeway, `iat`
//! and `nbf` not in the future, `user_id` as a string or an integer. Keys are built once at start-up.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap};
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::config::JwtConfig;
use crate::error::{Error, Result};

/// Why a connection was not authenticated. Logged and counted by [`AuthError::reason`]; never sent
/// to the client, which only sees close code 4001.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token in the query string, `Authorization` header or subprotocol.
    #[error("no token")]
    Missing,
    /// The token failed signature, algorithm, format or time checks.
    #[error("invalid token: {0}")]
    Invalid(jsonwebtoken::errors::Error),
    /// The token verified but `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `token_type` is missing or not `access` (e.g. a refresh token).
    #[error("wrong token type")]
    WrongType,
    /// A required claim (`jti`) is missing.
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    /// `iat` lies in the future.
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `user_id` is missing or not a usable id.
    #[error("bad user_id claim")]
    BadUserId,
    /// The user directory does not know the user.
    #[error("unknown user")]
    UnknownUser,
    /// The user directory knows the user but `is_active` is false.
    #[error("inactive user")]
    InactiveUser,
    /// The user directory could not be asked (database down).
    #[error("user directory unavailable: {0}")]
    Directory(String),
}

impl AuthError {
    /// A short, stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid(e) => match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => "bad_signature",
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => "bad_algorithm",
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => "not_yet_valid",
                jsonwebtoken::errors::ErrorKind::InvalidAudience => "bad_audience",
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => "bad_issuer",
                jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_) => "missing_claim",
                _ => "malformed",
            },
            Self::Expired => "expired",
            Self::WrongType => "wrong_type",
            Self::MissingClaim(_) => "missing_claim",
            Self::IssuedInFuture => "not_yet_valid",
            Self::BadUserId => "bad_user_id",
            Self::UnknownUser => "unknown_user",
            Self::InactiveUser => "inactive_user",
            Self::Directory(_) => "directory_error",
        }
    }
}

/// A user id as Django stores it: an integer primary key, or (custom user models) a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserId {
    /// Integer primary key; simplejwt ≥ 5.5.1 sends it as a string (`"42"`), older versions as a number.
    Int(i64),
    /// A non-numeric key (UUID and the like), limited to characters valid in a Channels group name.
    Str(String),
}

impl UserId {
    /// Parses a claim the way Django's `User.objects.get(id=...)` would: `"01"` and `"1 "` are 1.
    pub fn from_claim(v: &Value) -> Option<Self> {
        match v {
            Value::Number(n) => n.as_i64().map(Self::Int),
            Value::String(s) => {
                let t = s.trim();
                if let Ok(n) = t.parse::<i64>() {
                    return Some(Self::Int(n));
                }
                let valid = !t.is_empty()
                    && t.len() < 90
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                valid.then(|| Self::Str(t.to_owned()))
            }
            _ => None,
        }
    }

    /// The id as it appears in `connection_established` (`user_id` is a number when numeric).
    pub fn to_json(&self) -> Value {
        match self {
            Self::Int(n) => Value::from(*n),
            Self::Str(s) => Value::from(s.as_str()),
        }
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int(n) => write!(f, "{n}"),
            Self::Str(s) => f.write_str(s),
        }
    }
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone)]
pub struct Claims {
    /// The `user_id` claim.
    pub user_id: UserId,
    /// The optional `username` claim (the token directory uses it for the welcome frame).
    pub username: Option<String>,
    /// `exp`, seconds since the Unix epoch: the connection's token lifetime (PROTOCOL.md §7).
    pub exp: f64,
}

#[derive(Deserialize)]
struct RawClaims {
    user_id: Option<Value>,
    token_type: Option<String>,
    jti: Option<Value>,
    iat: Option<f64>,
    // Optional here so that a missing `exp` is reported by jsonwebtoken's required-claims check
    // (`missing_claim`) rather than as a malformed payload.
    exp: Option<f64>,
    username: Option<String>,
}

/// Verifies access tokens. Built once from [`JwtConfig`]; cheap to share behind the app state.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    /// Builds the key and validation rules; fails on a missing or unreadable key.
    pub fn new(cfg: &JwtConfig) -> Result<Self> {
        let key = match cfg.algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => match &cfg.secret {
                Some(s) if !s.is_empty() => DecodingKey::from_secret(s.as_bytes()),
                _ => {
                    return Err(Error::Config(
                        "--jwt-secret must be set and non-empty for HS* algorithms".into(),
                    ))
                }
            },
            alg => {
                let pem = cfg.public_key_pem.as_deref().ok_or_else(|| {
                    Error::Config(format!("--jwt-public-key is required for {alg:?}"))
                })?;
                let key = match alg {
                    Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem.as_bytes()),
                    Algorithm::EdDSA => DecodingKey::from_ed_pem(pem.as_bytes()),
                    _ => DecodingKey::from_rsa_pem(pem.as_bytes()),
                };
                key.map_err(|e| Error::Config(format!("bad --jwt-public-key: {e}")))?
            }
        };
        let mut validation = Validation::new(cfg.algorithm);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        // simplejwt ignores `aud`/`iss` unless configured; so do we.
        match &cfg.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &cfg.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(Self { key, validation })
    }

    /// Verifies a token and returns its claims.
    pub fn verify(&self, token: &str) -> std::result::Result<Claims, AuthError> {
        let data = decode::<RawClaims>(token, &self.key, &self.validation).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid(e),
        })?;
        let c = data.claims;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        // jsonwebtoken checks `exp` in whole seconds; simplejwt compares exact datetimes.
        let exp = match c.exp {
            Some(exp) if exp > now => exp,
            _ => return Err(AuthError::Expired),
        };
        if c.token_type.as_deref() != Some("access") {
            return Err(AuthError::WrongType);
        }
        if c.jti.is_none() {
            return Err(AuthError::MissingClaim("jti"));
        }
        if c.iat.is_some_and(|iat| iat > now) {
            return Err(AuthError::IssuedInFuture);
        }
        let user_id = c
            .user_id
            .as_ref()
            .and_then(UserId::from_claim)
            .ok_or(AuthError::BadUserId)?;
        Ok(Claims {
            user_id,
            username: c.username,
            exp,
        })
    }
}

/// Finds the token: first `token` query parameter (percent-decoded), then `Authorization: Bearer`,
/// then the subprotocol pair `bearer, <JWT>`. Returns whether the subprotocol form was used, because
/// the handshake must then select `bearer`.
pub fn extract_token(query: Option<&str>, headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(q) = query {
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k == "token" {
                let v = v.replace('+', " ");
                let v = percent_encoding::percent_decode_str(&v).decode_utf8_lossy();
                return Some((v.into_owned(), false));
            }
        }
    }
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some((scheme, token)) = v.trim().split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
                return Some((token.trim().to_owned(), false));
            }
        }
    }
    let protocols = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    let mut after_bearer = false;
    for p in protocols {
        if after_bearer {
            return Some((p.to_owned(), true));
        }
        after_bearer = p.eq_ignore_ascii_case("bearer");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_id_parsing_matches_django() {
        assert_eq!(UserId::from_claim(&json!("01")), Some(UserId::Int(1)));
        assert_eq!(UserId::from_claim(&json!("1 ")), Some(UserId::Int(1)));
        assert_eq!(UserId::from_claim(&json!(7)), Some(UserId::Int(7)));
        assert_eq!(
            UserId::from_claim(&json!("ab-c")),
            Some(UserId::Str("ab-c".into()))
        );
        assert_eq!(UserId::from_claim(&json!("a b")), None);
        assert_eq!(UserId::from_claim(&json!(1.5)), None);
        assert_eq!(UserId::from_claim(&json!(null)), None);
    }

    #[test]
    fn token_sources_in_order() {
        let mut h = HeaderMap::new();
        assert_eq!(
            extract_token(Some("a=1&token=x%2By"), &h),
            Some(("x+y".into(), false))
        );
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(extract_token(None, &h), Some(("abc".into(), false)));
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "bearer, tok".parse().unwrap(),
        );
        assert_eq!(extract_token(Some("x=1"), &h), Some(("tok".into(), true)));
        assert_eq!(extract_token(None, &HeaderMap::new()), None);
    }
}
