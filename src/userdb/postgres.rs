//! The PostgreSQL user store: one lazily opened tokio-postgres connection with prepared statements.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio_postgres::{Client, NoTls, Statement};

use super::{Row, UserStore};
use crate::auth::UserId;
use crate::error::{Error, Result};

/// Reads the user table over one connection, re-opened when it breaks.
pub(super) struct PgStore {
    config: tokio_postgres::Config,
    table: String,
    /// The live connection; a tokio mutex because connecting awaits, and only one task should.
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
}

struct Conn {
    client: Client,
    by_int: Statement,
    by_text: Statement,
    many_int: Statement,
    many_text: Statement,
}

impl PgStore {
    /// Parses `url` (a typo fails at start-up); `table` is already checked by the caller.
    pub(super) fn new(url: &str, table: &str) -> Result<Self> {
        let config = url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| Error::Config(format!("--user-db: {e}")))?;
        Ok(Self {
            config,
            table: table.to_owned(),
            conn: Default::default(),
        })
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
        let many_int = client
            .prepare(&format!(
                "SELECT id::text, username, is_active FROM {t} WHERE id = ANY($1::int8[])"
            ))
            .await;
        let many_text = client
            .prepare(&format!(
                "SELECT id::text, username, is_active FROM {t} WHERE id::text = ANY($1::text[])"
            ))
            .await;
        let conn = Arc::new(Conn {
            by_int: by_int.map_err(|e| e.to_string())?,
            by_text: by_text.map_err(|e| e.to_string())?,
            many_int: many_int.map_err(|e| e.to_string())?,
            many_text: many_text.map_err(|e| e.to_string())?,
            client,
        });
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn query(&self, id: &UserId) -> std::result::Result<Option<Row>, String> {
        let conn = self.connection().await?;
        let row = match id {
            UserId::Int(n) => conn.client.query_opt(&conn.by_int, &[n]).await,
            UserId::Str(s) => conn.client.query_opt(&conn.by_text, &[s]).await,
        };
        let Some(row) = row.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        Ok(Some(Row {
            username: row.try_get(0).map_err(|e| e.to_string())?,
            is_active: row.try_get(1).map_err(|e| e.to_string())?,
        }))
    }
}

impl PgStore {
    /// Integer ids use the primary-key index; other ids compare as text.
    async fn query_many(
        &self,
        ids: &[UserId],
    ) -> std::result::Result<HashMap<String, Row>, String> {
        let conn = self.connection().await?;
        let (ints, texts): (Vec<_>, Vec<_>) =
            ids.iter().partition(|id| matches!(id, UserId::Int(_)));
        let ints: Vec<i64> = ints
            .iter()
            .filter_map(|id| match id {
                UserId::Int(n) => Some(*n),
                UserId::Str(_) => None,
            })
            .collect();
        let texts: Vec<String> = texts.iter().map(|id| id.to_string()).collect();
        let mut rows = Vec::new();
        if !ints.is_empty() {
            rows.extend(
                conn.client
                    .query(&conn.many_int, &[&ints])
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        if !texts.is_empty() {
            rows.extend(
                conn.client
                    .query(&conn.many_text, &[&texts])
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        rows.iter()
            .map(|r| {
                let row = Row {
                    username: r.try_get(1).map_err(|e| e.to_string())?,
                    is_active: r.try_get(2).map_err(|e| e.to_string())?,
                };
                Ok((r.try_get::<_, String>(0).map_err(|e| e.to_string())?, row))
            })
            .collect()
    }
}

impl UserStore for PgStore {
    fn fetch_many<'a>(
        &'a self,
        ids: &'a [UserId],
    ) -> BoxFuture<'a, std::result::Result<HashMap<String, Row>, String>> {
        Box::pin(self.query_many(ids))
    }

    fn fetch<'a>(
        &'a self,
        id: &'a UserId,
    ) -> BoxFuture<'a, std::result::Result<Option<Row>, String>> {
        Box::pin(self.query(id))
    }
}
