//! The Django user directory: reads `auth_user` (`id`, `username`, `is_active`) from PostgreSQL.
//!
//! The reference middleware does `User.objects.get(id=user_id)` on every handshake. courier asks
//! the same table, once per user per `cache_ttl` (a reconnect storm of one user costs one query),
//! and refuses unknown and inactive users (4001) like simplejwt's HTTP authentication does. The
//! connection is opened lazily and re-opened after a failure; while the database is unreachable
//! handshakes fail with [`AuthError::Directory`] (also 4001) rather than letting anyone in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio_postgres::{Client, NoTls, Statement};

use crate::auth::{AuthError, Claims, UserId};
use crate::config::UserDbConfig;
use crate::directory::{User, UserDirectory};
use crate::error::{Error, Result};

/// Bound on one connect or query; a stuck database must not hold handshakes forever.
const DB_TIMEOUT: Duration = Duration::from_secs(5);

/// Looks users up in Django's user table, with a bounded TTL cache.
pub struct DjangoUserDirectory {
    config: tokio_postgres::Config,
    table: String,
    ttl: Duration,
    capacity: usize,
    /// The live connection; a tokio mutex because connecting awaits, and only one task should.
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    /// Answers by id: a user, or "unknown"/"inactive". Never held across `.await`.
    cache: Mutex<HashMap<UserId, (Instant, Answer)>>,
}

struct Conn {
    client: Client,
    by_int: Statement,
    by_text: Statement,
}

#[derive(Clone)]
enum Answer {
    Found(User),
    Unknown,
    Inactive,
}

impl DjangoUserDirectory {
    /// Parses the URL now (a typo fails at start-up); connects on the first lookup.
    pub fn new(db: &UserDbConfig) -> Result<Self> {
        let config = db
            .url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| Error::Config(format!("--user-db: {e}")))?;
        let table = db.table.clone();
        let valid = !table.is_empty()
            && table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        if !valid {
            return Err(Error::Config(format!(
                "--user-table {table:?} is not a plain table name"
            )));
        }
        Ok(Self {
            config,
            table,
            ttl: db.cache_ttl,
            capacity: db.cache_size,
            conn: Default::default(),
            cache: Default::default(),
        })
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<UserId, (Instant, Answer)>> {
        // Entries are inserted whole; a poisoned map is still consistent.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self, id: &UserId) -> Option<Answer> {
        let cache = self.cache();
        let (at, answer) = cache.get(id)?;
        (at.elapsed() < self.ttl).then(|| answer.clone())
    }

    fn remember(&self, id: UserId, answer: Answer) {
        let mut cache = self.cache();
        if cache.len() >= self.capacity {
            let ttl = self.ttl;
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
            // Still full of fresh entries: forget an arbitrary one; the cache is only a shortcut.
            if cache.len() >= self.capacity {
                if let Some(k) = cache.keys().next().cloned() {
                    cache.remove(&k);
                }
            }
        }
        cache.insert(id, (Instant::now(), answer));
    }

    /// The current connection, or a new one.
    async fn connection(&self) -> std::result::Result<Arc<Conn>, String> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(conn.clone());
        }
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| e.to_string())?;
        // The connection future drives the socket; it ends when the client is dropped or breaks.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "user database connection closed");
            }
        });
        let t = &self.table;
        // `id = $1::int8` keeps the primary-key index usable for both integer and bigint ids.
        let by_int = client
            .prepare(&format!(
                "SELECT username, is_active FROM {t} WHERE id = $1::int8"
            ))
            .await;
        let by_text = client
            .prepare(&format!(
                "SELECT username, is_active FROM {t} WHERE id::text = $1"
            ))
            .await;
        let conn = Arc::new(Conn {
            by_int: by_int.map_err(|e| e.to_string())?,
            by_text: by_text.map_err(|e| e.to_string())?,
            client,
        });
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn query(&self, id: &UserId) -> std::result::Result<Answer, String> {
        let conn = self.connection().await?;
        let row = match id {
            UserId::Int(n) => conn.client.query_opt(&conn.by_int, &[n]).await,
            UserId::Str(s) => conn.client.query_opt(&conn.by_text, &[s]).await,
        };
        let row = row.map_err(|e| e.to_string())?;
        let Some(row) = row else {
            return Ok(Answer::Unknown);
        };
        let username: String = row.try_get(0).map_err(|e| e.to_string())?;
        let active: bool = row.try_get(1).map_err(|e| e.to_string())?;
        Ok(if active {
            Answer::Found(User {
                id: id.clone(),
                username,
            })
        } else {
            Answer::Inactive
        })
    }
}

impl UserDirectory for DjangoUserDirectory {
    fn lookup<'a>(
        &'a self,
        claims: &'a Claims,
    ) -> BoxFuture<'a, std::result::Result<User, AuthError>> {
        Box::pin(async move {
            let id = &claims.user_id;
            let answer = match self.cached(id) {
                Some(a) => a,
                None => {
                    let answer = match tokio::time::timeout(DB_TIMEOUT, self.query(id)).await {
                        Ok(Ok(a)) => a,
                        Ok(Err(e)) => return Err(AuthError::Directory(e)),
                        Err(_) => {
                            return Err(AuthError::Directory("user database timed out".into()))
                        }
                    };
                    self.remember(id.clone(), answer.clone());
                    answer
                }
            };
            match answer {
                Answer::Found(user) => Ok(user),
                Answer::Unknown => Err(AuthError::UnknownUser),
                Answer::Inactive => Err(AuthError::InactiveUser),
            }
        })
    }
}
