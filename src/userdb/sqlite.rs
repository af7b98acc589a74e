//! The SQLite user store (Django's default database): one read-only rusqlite connection, queried on
//! Tokio's blocking pool so a slow disk or a writer's lock never stalls the async workers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{Row, UserStore};
use crate::auth::UserId;
use crate::error::{Error, Result};

/// How long a lookup waits for Django's write lock (rollback-journal mode blocks readers while a
/// writer commits) before failing; below the directory's overall `DB_TIMEOUT`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads the user table from a SQLite file, opened read-only on the first lookup and re-opened
/// after any error (the file may have been replaced, e.g. by a fresh `migrate`).
pub(super) struct SqliteStore {
    path: Arc<PathBuf>,
    /// `SELECT username, is_active FROM <table> WHERE id = ?1`.
    sql: Arc<str>,
    /// The table, checked by the caller (re-check statements are built per batch size).
    table: Arc<str>,
    /// The connection. A std mutex: it is only locked inside `spawn_blocking`, never across
    /// `.await`, and it serializes lookups, which a rusqlite `Connection` (not `Sync`) needs anyway.
    conn: Arc<Mutex<Option<Connection>>>,
}

impl SqliteStore {
    /// Takes the path out of `sqlite:///abs/path` (or `sqlite://relative/path`); `table` is
    /// already checked by the caller.
    pub(super) fn new(url: &str, table: &str) -> Result<Self> {
        let path = sqlite_path(url)?;
        if !path.exists() {
            // Not fatal: the file may appear (first `migrate`); until then handshakes get 4001.
            tracing::warn!(path = %path.display(), "--user-db SQLite file does not exist (yet)");
        }
        Ok(Self {
            path: Arc::new(path),
            // `id = ?1` keeps the primary-key index usable; SQLite converts a numeric text id
            // ("42") to an integer against the INTEGER column, so string ids work as in Postgres.
            sql: format!("SELECT username, is_active FROM {table} WHERE id = ?1").into(),
            table: table.into(),
            conn: Default::default(),
        })
    }
}

impl SqliteStore {
    /// Runs `f` on the connection (opened on first use) on the blocking pool; an error drops the
    /// connection, so the next call opens the file again.
    fn blocking<'a, T: Send + 'static>(
        &'a self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> BoxFuture<'a, std::result::Result<T, String>> {
        let (path, conn) = (self.path.clone(), self.conn.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                // A panic cannot leave the slot half-written; a poisoned lock is still usable.
                let mut slot = conn.lock().unwrap_or_else(|p| p.into_inner());
                let result = match &mut *slot {
                    Some(conn) => f(conn),
                    None => open(&path).and_then(|c| f(slot.insert(c))),
                };
                if result.is_err() {
                    *slot = None;
                }
                result.map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| format!("user database task failed: {e}"))?
        })
    }
}

impl UserStore for SqliteStore {
    fn fetch<'a>(
        &'a self,
        id: &'a UserId,
    ) -> BoxFuture<'a, std::result::Result<Option<Row>, String>> {
        let (sql, id) = (self.sql.clone(), id.clone());
        self.blocking(move |conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            match &id {
                UserId::Int(n) => stmt.query_row([n], row),
                UserId::Str(s) => stmt.query_row([s], row),
            }
            .optional()
        })
    }

    fn fetch_many<'a>(
        &'a self,
        ids: &'a [UserId],
    ) -> BoxFuture<'a, std::result::Result<HashMap<String, Row>, String>> {
        // One statement per batch size: `id IN (?1, …, ?n)`, ids bound as text (SQLite compares
        // a numeric text with the INTEGER column as a number, as for one id).
        let marks = vec!["?"; ids.len()].join(", ");
        let sql = format!(
            "SELECT CAST(id AS TEXT), username, is_active FROM {} WHERE id IN ({marks})",
            self.table
        );
        let ids: Vec<String> = ids.iter().map(UserId::to_string).collect();
        self.blocking(move |conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(&ids), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Row {
                        username: r.get(1)?,
                        is_active: r.get(2)?,
                    },
                ))
            })?;
            rows.collect()
        })
    }
}

/// One row of `SELECT username, is_active`.
fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        username: r.get(0)?,
        is_active: r.get(1)?,
    })
}

fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
    // Read-only: courier never writes Django's database, and a typo'd path is not created.
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// `sqlite:///abs/path` → `/abs/path`; `sqlite:////abs/path` (dj-database-url's absolute form)
/// → `/abs/path`; `sqlite://rel/path` → `rel/path`. Percent-escapes are decoded.
fn sqlite_path(url: &str) -> Result<PathBuf> {
    let rest = url.strip_prefix("sqlite://").unwrap_or(url);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let rest = if rest.starts_with("//") {
        &rest[1..]
    } else {
        rest
    };
    let path = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .map_err(|e| Error::Config(format!("--user-db: SQLite path is not UTF-8: {e}")))?;
    if path.is_empty() || path == "/" {
        return Err(Error::Config(
            "--user-db: sqlite:// needs a file path, e.g. sqlite:///srv/app/db.sqlite3".into(),
        ));
    }
    Ok(PathBuf::from(path.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::sqlite_path;
    use std::path::Path;

    #[test]
    fn urls_map_to_paths() {
        let p = |u| sqlite_path(u).expect(u);
        assert_eq!(p("sqlite:///srv/db.sqlite3"), Path::new("/srv/db.sqlite3"));
        assert_eq!(p("sqlite:////srv/db.sqlite3"), Path::new("/srv/db.sqlite3"));
        assert_eq!(p("sqlite://db.sqlite3"), Path::new("db.sqlite3"));
        assert_eq!(p("sqlite:///a%20b/db?mode=ro"), Path::new("/a b/db"));
        assert!(sqlite_path("sqlite://").is_err());
        assert!(sqlite_path("sqlite:///").is_err());
    }
}
