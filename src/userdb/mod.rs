//! The Django user directory: reads `auth_user` (`id`, `username`, `is_active`) from PostgreSQL or SQLite.
//!
//! The reference middleware does `User.objects.get(id=user_id)` on every handshake. courier asks
//! the same table, once per user per `cache_ttl` (a reconnect storm of one user costs one query),
//! and refuses unknown and inactive users (4001) like simplejwt's HTTP authentication does. The
//! database is opened lazily and re-opened after a failure; while it is unreachable handshakes
//! fail with [`AuthError::Directory`] (also 4001) rather than letting anyone in.
//!
//! The cache and the answer rules live here, once; each database is a small [`UserStore`] that
//! only fetches one row: [`postgres`] (tokio-postgres) and [`sqlite`] (rusqlite, Django's default
//! database, queried on the blocking pool).

mod postgres;
mod sqlite;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::auth::{AuthError, Claims, UserId};
use crate::config::UserDbConfig;
use crate::directory::{User, UserDirectory};
use crate::error::{Error, Result};

/// Bound on one connect or query; a stuck database must not hold handshakes forever.
const DB_TIMEOUT: Duration = Duration::from_secs(5);

/// What `--user-db` accepts, for error messages.
const USER_DB_FORMS: &str =
    "use postgres://user@host/db, a libpq key=value string, or sqlite:///path/to/db.sqlite3";

/// The columns of one user-table row that the directory needs.
struct Row {
    username: String,
    is_active: bool,
}

/// Ids asked in one re-check query (a bounded statement, however many users are connected).
const RECHECK_BATCH: usize = 500;

/// One database behind the directory: fetches rows by primary key, nothing else.
trait UserStore: Send + Sync + 'static {
    /// The row whose `id` is `id`; `Ok(None)` when there is none, `Err` when the database cannot
    /// answer (the message is logged and counted, never sent to the client).
    fn fetch<'a>(
        &'a self,
        id: &'a UserId,
    ) -> BoxFuture<'a, std::result::Result<Option<Row>, String>>;

    /// The rows of `ids` that exist (at most [`RECHECK_BATCH`] ids), keyed by the id as text.
    fn fetch_many<'a>(
        &'a self,
        ids: &'a [UserId],
    ) -> BoxFuture<'a, std::result::Result<HashMap<String, Row>, String>>;
}

/// Looks users up in Django's user table, with a bounded TTL cache.
pub struct DjangoUserDirectory {
    store: Box<dyn UserStore>,
    ttl: Duration,
    capacity: usize,
    /// Answers by id: a user, or "unknown"/"inactive". A std mutex: never held across `.await`.
    cache: Mutex<HashMap<UserId, (Instant, Answer)>>,
}

#[derive(Clone)]
enum Answer {
    Found(User),
    Unknown,
    Inactive,
}

impl DjangoUserDirectory {
    /// Checks the URL and table name now (a typo fails at start-up); connects on the first lookup.
    ///
    /// `postgres://…`/`postgresql://…` (or a libpq `key=value` string) selects PostgreSQL;
    /// `sqlite:///abs/path.sqlite3` (or `sqlite://relative/path`) selects SQLite, opened read-only.
    pub fn new(db: &UserDbConfig) -> Result<Self> {
        check_table(&db.table)?;
        let store: Box<dyn UserStore> = match scheme(&db.url) {
            Some("postgres" | "postgresql") => {
                Box::new(postgres::PgStore::new(&db.url, &db.table)?)
            }
            Some("sqlite") => Box::new(sqlite::SqliteStore::new(&db.url, &db.table)?),
            None if db.url.contains('=') => Box::new(postgres::PgStore::new(&db.url, &db.table)?),
            // Only a plain scheme goes into the message: the rest may hold a password.
            Some(s)
                if s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
            {
                return Err(Error::Config(format!(
                    "--user-db: unsupported scheme {s:?}; {USER_DB_FORMS}"
                )))
            }
            _ => {
                return Err(Error::Config(format!(
                    "--user-db is not a URL; {USER_DB_FORMS}"
                )))
            }
        };
        Ok(Self {
            store,
            ttl: db.cache_ttl,
            capacity: db.cache_size,
            cache: Default::default(),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, (Instant, Answer)>> {
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
            // Still full of fresh entries: forget the oldest, the one closest to expiring anyway.
            // O(capacity), but only when the cache is full, and cheaper than the query it follows.
            if cache.len() >= self.capacity {
                let oldest = cache
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    cache.remove(&k);
                }
            }
        }
        cache.insert(id, (Instant::now(), answer));
    }

    /// The answer a row (or its absence) gives for `id`.
    fn answer(id: &UserId, row: Option<Row>) -> Answer {
        match row {
            None => Answer::Unknown,
            Some(Row {
                is_active: false, ..
            }) => Answer::Inactive,
            Some(Row { username, .. }) => Answer::Found(User {
                id: id.clone(),
                username,
            }),
        }
    }

    async fn query(&self, id: &UserId) -> std::result::Result<Answer, AuthError> {
        let row = match tokio::time::timeout(DB_TIMEOUT, self.store.fetch(id)).await {
            Ok(Ok(row)) => row,
            Ok(Err(e)) => return Err(AuthError::Directory(e)),
            Err(_) => return Err(AuthError::Directory("user database timed out".into())),
        };
        Ok(Self::answer(id, row))
    }

    /// Re-reads `ids` in batches, refreshing the cache with what it finds.
    async fn recheck(&self, ids: &[UserId]) -> std::result::Result<Vec<UserId>, AuthError> {
        let mut refused = Vec::new();
        for batch in ids.chunks(RECHECK_BATCH) {
            let mut rows =
                match tokio::time::timeout(DB_TIMEOUT, self.store.fetch_many(batch)).await {
                    Ok(Ok(rows)) => rows,
                    Ok(Err(e)) => return Err(AuthError::Directory(e)),
                    Err(_) => return Err(AuthError::Directory("user database timed out".into())),
                };
            for id in batch {
                let answer = Self::answer(id, rows.remove(&id.to_string()));
                if !matches!(answer, Answer::Found(_)) {
                    refused.push(id.clone());
                }
                self.remember(id.clone(), answer);
            }
        }
        Ok(refused)
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
                    // Failures are not cached: the next handshake asks the database again.
                    let answer = self.query(id).await?;
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

    fn refused_among<'a>(
        &'a self,
        ids: &'a [UserId],
    ) -> BoxFuture<'a, std::result::Result<Vec<UserId>, AuthError>> {
        Box::pin(self.recheck(ids))
    }

    /// Half the cache lifetime: a user deactivated in Django is closed within it, even on an idle
    /// connection.
    fn recheck_every(&self) -> Option<Duration> {
        Some((self.ttl / 2).max(Duration::from_millis(100)))
    }
}

/// The URL scheme (`postgres` in `postgres://…`), or `None` for a libpq `key=value` string.
fn scheme(url: &str) -> Option<&str> {
    url.split_once("://").map(|(s, _)| s)
}

/// The table name is spliced into SQL, so only plain (optionally schema-qualified) names pass.
fn check_table(table: &str) -> Result<()> {
    let valid = !table.is_empty()
        && table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if valid {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "--user-table {table:?} is not a plain table name"
        )))
    }
}
