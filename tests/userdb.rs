//! The Django user directory against a real PostgreSQL: known, unknown and inactive users, both
//! directly and through a server handshake. Each run creates its own schema and drops it after.

mod common;
mod services;

use std::time::Duration;

use courier::auth::{AuthError, Claims};
use courier::config::UserDbConfig;
use courier::directory::UserDirectory;
use courier::userdb::DjangoUserDirectory;
use courier::UserId;
use tokio_postgres::NoTls;

/// A schema holding an `auth_user` shaped like Django's, dropped on [`Schema::drop_now`].
struct Schema {
    client: tokio_postgres::Client,
    name: String,
}

impl Schema {
    async fn create() -> Option<Self> {
        let url = services::pg_url();
        let connected =
            tokio::time::timeout(Duration::from_secs(3), tokio_postgres::connect(&url, NoTls))
                .await;
        let (client, conn) = match connected {
            Ok(Ok(pair)) => pair,
            failed => {
                let why = failed.map_or_else(
                    |_| "timeout".to_owned(),
                    |r| r.err().map(|e| e.to_string()).unwrap_or_default(),
                );
                services::available("PostgreSQL", false, &format!("{url}: {why}"));
                return None;
            }
        };
        tokio::spawn(conn);
        let name = services::unique_prefix().replace('-', "_");
        let ddl = format!(
            "CREATE SCHEMA {name};
             CREATE TABLE {name}.auth_user (
                 id serial PRIMARY KEY, password varchar(128) NOT NULL DEFAULT '',
                 last_login timestamptz, is_superuser boolean NOT NULL DEFAULT false,
                 username varchar(150) NOT NULL UNIQUE, first_name varchar(150) NOT NULL DEFAULT '',
                 last_name varchar(150) NOT NULL DEFAULT '', email varchar(254) NOT NULL DEFAULT '',
                 is_staff boolean NOT NULL DEFAULT false, is_active boolean NOT NULL,
                 date_joined timestamptz NOT NULL DEFAULT now());
             INSERT INTO {name}.auth_user (id, username, is_active) VALUES (1, 'alice', true), (2, 'bob', false);"
        );
        client.batch_execute(&ddl).await.expect("create schema");
        Some(Self { client, name })
    }

    fn config(&self) -> UserDbConfig {
        UserDbConfig {
            url: services::pg_url(),
            table: format!("{}.auth_user", self.name),
            cache_ttl: Duration::from_millis(300),
            cache_size: 10,
        }
    }

    async fn drop_now(self) {
        let _ = self
            .client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await;
    }
}

fn claims(id: i64) -> Claims {
    Claims {
        user_id: UserId::Int(id),
        username: Some("from-token".into()),
        exp: f64::MAX,
    }
}

#[tokio::test]
async fn known_unknown_and_inactive_users() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let dir = DjangoUserDirectory::new(&schema.config()).expect("directory");
    let alice = dir.lookup(&claims(1)).await.expect("alice is known");
    assert_eq!(
        (alice.id, alice.username.as_str()),
        (UserId::Int(1), "alice"),
        "username comes from the table"
    );
    assert!(matches!(
        dir.lookup(&claims(2)).await,
        Err(AuthError::InactiveUser)
    ));
    assert!(matches!(
        dir.lookup(&claims(3)).await,
        Err(AuthError::UnknownUser)
    ));
    let text_id = Claims {
        user_id: UserId::Str("abc".into()),
        username: None,
        exp: f64::MAX,
    };
    assert!(matches!(
        dir.lookup(&text_id).await,
        Err(AuthError::UnknownUser)
    ));

    // Cached for the TTL, then read again: deactivating alice takes effect after it.
    schema
        .client
        .batch_execute(&format!(
            "UPDATE {}.auth_user SET is_active = false WHERE id = 1",
            schema.name
        ))
        .await
        .expect("update");
    assert!(dir.lookup(&claims(1)).await.is_ok(), "still cached");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        matches!(dir.lookup(&claims(1)).await, Err(AuthError::InactiveUser)),
        "cache expired"
    );
    schema.drop_now().await;
}

#[tokio::test]
async fn unreachable_database_refuses_rather_than_admits() {
    let config = UserDbConfig {
        url: "postgres://nobody@127.0.0.1:1/none".into(),
        table: "auth_user".into(),
        cache_ttl: Duration::from_secs(30),
        cache_size: 10,
    };
    let dir = DjangoUserDirectory::new(&config).expect("url parses");
    assert!(matches!(
        dir.lookup(&claims(1)).await,
        Err(AuthError::Directory(_))
    ));
    let bad_table = UserDbConfig {
        table: "auth_user; DROP TABLE x".into(),
        ..config
    };
    assert!(
        DjangoUserDirectory::new(&bad_table).is_err(),
        "table names are checked"
    );
}

#[tokio::test]
async fn handshake_uses_the_django_user_table() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    common::userdb::assert_handshake_uses_user_table(schema.config()).await;
    schema.drop_now().await;
}

#[tokio::test]
async fn a_deleted_users_idle_connection_is_closed() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    common::userdb::assert_revoked_user_is_closed(schema.config(), || async {
        let sql = format!("DELETE FROM {}.auth_user WHERE id = 1", schema.name);
        schema
            .client
            .batch_execute(&sql)
            .await
            .expect("delete alice");
    })
    .await;
    schema.drop_now().await;
}

#[tokio::test]
async fn connected_users_are_rechecked_in_one_batch() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let dir = DjangoUserDirectory::new(&schema.config()).expect("directory");
    let ids = [
        UserId::Int(1),
        UserId::Int(2),
        UserId::Int(3),
        UserId::Str("abc".into()),
    ];
    let refused = dir.refused_among(&ids).await.expect("answers");
    assert_eq!(
        refused,
        ids[1..],
        "inactive, unknown and a text id nobody has"
    );
    schema.drop_now().await;
}
