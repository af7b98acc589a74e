//! Tokens: query-string / header extraction and simplejwt-compatible verification (HS256, a fixed
//! secret), through `courier::auth` as the upgrade handler calls it.
//!
//! Byte 0 (mod 4) picks the mode; the rest is its input:
//! - 0, raw: the bytes (as UTF-8, lossy) are a query string, a token, an `Authorization` value and a
//!   subprotocol; a percent-encoded `token` parameter must come back exactly.
//! - 1, structured: the bytes choose each claim (valid, invalid, or of unknown verdict) and the
//!   header; the token is signed with the secret, so it gets past base64, JSON and the signature,
//!   and must be accepted exactly when every choice is valid, with the claims it carries.
//! - 2, signed payload: the bytes are the payload, signed; 3, signed header: the bytes are the
//!   header, over a valid payload, signed.
//!
//! Whatever verifies must carry a correct HMAC of its signing input (checked with our own HMAC, not
//! jsonwebtoken's), an `HS256` header, `token_type` `access`, a `jti`, an `exp` in the future, no
//! `iat`/`nbf` in the future, and a `user_id` that makes a valid group name.
#![no_main]

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use courier::auth::{extract_token, AuthError, Claims, Verifier};
use courier::config::JwtConfig;
use courier::layer::GroupName;
use courier::UserId;
use hmac::{Hmac, Mac};
use http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};

const SECRET: &str = "fuzz-secret";
/// Times this far from now are unambiguously past or future however long a run takes.
const MARGIN: u64 = 3600;

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| Verifier::new(&JwtConfig::hs256(SECRET)).expect("HS256 verifier"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hmac(input: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(input);
    mac.finalize().into_bytes().to_vec()
}

fn sign(header: &[u8], payload: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = URL_SAFE_NO_PAD.encode(hmac(input.as_bytes()));
    format!("{input}.{sig}")
}

/// Verifies `token` as it arrives in the query string, checking what an accepted token must be.
fn verify(token: &str) -> Result<Claims, AuthError> {
    let query = format!("token={token}");
    let found = extract_token(Some(&query), &HeaderMap::new());
    // Base64url and dots need no percent-encoding; other bytes may decode differently.
    if token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        assert_eq!(
            found.as_ref().map(|(t, sub)| (t.as_str(), *sub)),
            Some((token, false))
        );
    }
    let result = verifier().verify(token);
    if let Ok(claims) = &result {
        let parts: Vec<&str> = token.split('.').collect();
        let [h, p, s] = parts[..] else {
            panic!("accepted a token of {} parts", parts.len())
        };
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .expect("accepted signature is base64url");
        assert_eq!(
            sig,
            hmac(format!("{h}.{p}").as_bytes()),
            "accepted a bad signature"
        );
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).expect("header b64"))
            .expect("accepted header is JSON");
        assert_eq!(header["alg"], "HS256", "accepted another algorithm");
        let c: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("payload b64"))
            .expect("accepted payload is JSON");
        let t = now() as f64;
        assert_eq!(c["token_type"], "access");
        assert!(!c["jti"].is_null(), "accepted without jti");
        assert!(
            c["exp"].as_f64().is_some_and(|e| e > t - 1.0),
            "accepted expired: {c}"
        );
        assert!(c
            .get("iat")
            .is_none_or(|i| i.as_f64().is_some_and(|i| i <= t + 1.0)));
        assert!(c
            .get("nbf")
            .is_none_or(|n| n.as_f64().is_some_and(|n| n <= t + 1.0)));
        assert!(
            GroupName::for_user(&claims.user_id).is_some(),
            "user id makes no group"
        );
    }
    result
}

/// What one structured choice implies for the whole token.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Accept,
    /// No oracle: only the invariants of an accepted token are checked.
    Unknown,
    Reject,
}

/// Reads choices off the fuzz input; zeros once it runs out.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |n, _| n << 8 | u64::from(self.byte()))
    }
    fn text(&mut self, max: u8) -> String {
        let n = usize::from(self.byte() % max.max(1)).min(self.0.len());
        let (t, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8_lossy(t).into_owned()
    }
    /// A string over Channels' group-name alphabet, starting with a letter (so never numeric).
    fn id(&mut self, len: usize) -> String {
        const ABC: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";
        (0..len)
            .map(|i| {
                let n = if i == 0 { 52 } else { ABC.len() };
                char::from(ABC[usize::from(self.byte()) % n])
            })
            .collect()
    }
}

/// Builds a signed token from choices; returns it with its verdict and the expected claims.
fn structured(c: &mut Choices) -> (String, Verdict, UserId, Option<String>) {
    let t = now();
    let mut v = Verdict::Accept;
    let mut set = |verdict: Verdict| v = v.max(verdict);
    let mut claims = Map::new();
    let mut want_id = UserId::Int(0);
    match c.byte() % 10 {
        0 => {
            let n = c.u64() as i64;
            claims.insert("user_id".into(), json!(n));
            want_id = UserId::Int(n);
        }
        1 => {
            let n = c.u64() >> 1;
            let pad = if c.byte() & 1 == 0 { "" } else { " " };
            let zeros = "0".repeat(usize::from(c.byte() % 3));
            claims.insert("user_id".into(), json!(format!("{pad}{zeros}{n}{pad}")));
            want_id = UserId::Int(n as i64);
        }
        2 => {
            let len = usize::from(c.byte() % 89) + 1;
            let s = c.id(len);
            claims.insert("user_id".into(), json!(s));
            want_id = UserId::Str(s);
        }
        3 => set(Verdict::Reject),
        4 => {
            claims.insert("user_id".into(), Value::Null);
            set(Verdict::Reject)
        }
        5 => {
            claims.insert("user_id".into(), json!(c.byte() as f64 + 0.5));
            set(Verdict::Reject)
        }
        6 => {
            claims.insert("user_id".into(), json!(c.byte() & 1 == 0));
            set(Verdict::Reject)
        }
        7 => {
            claims.insert("user_id".into(), json!(format!("{} {}", c.id(3), c.id(3))));
            set(Verdict::Reject)
        }
        8 => {
            claims.insert("user_id".into(), json!(c.id(90)));
            set(Verdict::Reject)
        }
        _ => {
            claims.insert("user_id".into(), json!(c.text(40)));
            set(Verdict::Unknown)
        }
    }
    match c.byte() % 5 {
        0 | 1 => {
            claims.insert("token_type".into(), json!("access"));
        }
        2 => {
            claims.insert("token_type".into(), json!("refresh"));
            set(Verdict::Reject)
        }
        3 => set(Verdict::Reject),
        _ => {
            claims.insert("token_type".into(), json!(c.byte()));
            set(Verdict::Reject)
        }
    }
    match c.byte() % 3 {
        0 => {
            claims.insert("jti".into(), json!(c.id(32)));
        }
        1 => {
            claims.insert("jti".into(), json!(c.byte()));
        }
        _ => set(Verdict::Reject),
    }
    let later = t + MARGIN + u64::from(c.byte()) * 86_400;
    let earlier = t.saturating_sub(MARGIN + u64::from(c.byte()) * 86_400);
    match c.byte() % 7 {
        0 | 1 => {
            claims.insert("exp".into(), json!(later));
        }
        2 => {
            claims.insert("exp".into(), json!(later as f64 + 0.25));
        }
        3 => {
            claims.insert("exp".into(), json!(earlier));
            set(Verdict::Reject)
        }
        4 => set(Verdict::Reject),
        5 => {
            claims.insert("exp".into(), json!(later.to_string()));
            set(Verdict::Reject)
        }
        _ => {
            claims.insert("exp".into(), json!(-1));
            set(Verdict::Reject)
        }
    }
    for name in ["iat", "nbf"] {
        match c.byte() % 4 {
            0 => {}
            1 => {
                claims.insert(name.into(), json!(earlier));
            }
            2 => {
                claims.insert(name.into(), json!(earlier as f64 + 0.5));
            }
            _ => {
                claims.insert(name.into(), json!(later));
                set(Verdict::Reject)
            }
        }
    }
    let username = match c.byte() % 3 {
        0 => None,
        1 => {
            let u = c.text(30);
            claims.insert("username".into(), json!(u));
            Some(u)
        }
        _ => {
            claims.insert("username".into(), json!(c.byte()));
            set(Verdict::Unknown);
            None
        }
    };
    // Extra claims (an unconfigured `aud` among them) are ignored, as simplejwt ignores them.
    for _ in 0..c.byte() % 4 {
        let key = format!("x_{}", c.id(6));
        claims.insert(key, json!(c.text(20)));
    }
    if c.byte() % 4 == 1 {
        claims.insert("aud".into(), json!(c.text(10)));
    }
    let header = match c.byte() % 6 {
        0..=2 => json!({"alg": "HS256", "typ": "JWT"}),
        3 => json!({"alg": "HS256", "typ": "JWT", "kid": c.text(10)}),
        4 => {
            set(Verdict::Reject);
            json!({"alg": "HS384", "typ": "JWT"})
        }
        _ => {
            set(Verdict::Reject);
            json!({"alg": "none"})
        }
    };
    let payload = serde_json::to_vec(&claims).expect("claims serialize");
    let header = serde_json::to_vec(&header).expect("header serializes");
    let mut token = sign(&header, &payload);
    if v == Verdict::Reject && c.byte() % 8 == 7 {
        // Some rejected tokens also lose their signature (the `alg: none` form).
        token.truncate(token.rfind('.').map_or(0, |i| i + 1));
    }
    (token, v, want_id, username)
}

/// Raw text as every token source; a percent-encoded `token` parameter comes back exactly.
fn raw(bytes: &[u8]) {
    let s = String::from_utf8_lossy(bytes);
    let _ = verify(&s);
    let none = HeaderMap::new();
    if let Some((_, sub)) = extract_token(Some(&s), &none) {
        assert!(!sub, "a query-string token is not the subprotocol form");
    }
    let encoded = utf8_percent_encode(&s, NON_ALPHANUMERIC)
        .to_string()
        .replace("%20", "+");
    let query = format!("a=1&token={encoded}&token=second");
    assert_eq!(
        extract_token(Some(&query), &none),
        Some((s.clone().into_owned(), false))
    );

    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {s}")) {
        let visible = v.to_str().is_ok();
        h.insert(header::AUTHORIZATION, v);
        let want = (visible && !s.trim().is_empty()).then(|| (s.trim().to_owned(), false));
        assert_eq!(extract_token(None, &h), want, "Authorization: Bearer {s:?}");
    }
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("bearer, {s}")) {
        let visible = v.to_str().is_ok();
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
        let first = s.split(',').next().unwrap_or_default().trim().to_owned();
        assert_eq!(
            extract_token(None, &h),
            visible.then_some((first, true)),
            "subprotocol {s:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    match mode % 4 {
        0 => raw(rest),
        1 => {
            let (token, verdict, user_id, username) = structured(&mut Choices(rest));
            let result = verify(&token);
            match verdict {
                Verdict::Accept => {
                    let claims = result.unwrap_or_else(|e| panic!("refused a valid token: {e}"));
                    assert_eq!(claims.user_id, user_id);
                    assert_eq!(claims.username, username);
                }
                Verdict::Reject => assert!(result.is_err(), "accepted an invalid token"),
                Verdict::Unknown => {}
            }
        }
        2 => {
            let _ = verify(&sign(br#"{"alg":"HS256","typ":"JWT"}"#, rest));
        }
        _ => {
            let payload = json!({
                "token_type": "access", "exp": now() + MARGIN, "jti": "j", "user_id": "7",
            });
            let token = sign(rest, payload.to_string().as_bytes());
            let _ = verify(&token).map(|c| assert_eq!(c.user_id, UserId::Int(7)));
        }
    }
});
