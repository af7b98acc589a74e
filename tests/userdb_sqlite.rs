//! The Django user directory against SQLite (Django's default database): known, unknown and
//! inactive users, the cache, a missing or broken file, URL checks, and a real handshake. Each test
//! makes its own database file in the temp dir, so no service is needed and the tests always run.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use courier::auth::{AuthError, Claims};
use courier::config::UserDbConfig;
use courier::directory::UserDirectory;
use courier::userdb::DjangoUserDirectory;
use courier::{AppState, Error, UserId};

/// A temp SQLite file, removed on drop.
struct TempDb(PathBuf);

impl TempDb {
    /// A path in the temp dir with nothing there yet.
    fn path_only() -> Self {
        let name = format!("courier-userdb-{}.sqlite3", uuid::Uuid::new_v4().simple());
        Self(std::env::temp_dir().join(name))
    }

    /// A database holding Django's `auth_user` (as `migrate` creates it on SQLite) under `table`,
    /// with alice (1, active) and bob (2, inactive).
    fn django(table: &str) -> Self {
        let db = Self::path_only();
        let conn = rusqlite::Connection::open(&db.0).expect("create sqlite file");
        conn.execute_batch(&format!(
            r#"CREATE TABLE "{table}" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
                 "password" varchar(128) NOT NULL, "last_login" datetime NULL,
                 "is_superuser" bool NOT NULL, "username" varchar(150) NOT NULL UNIQUE,
                 "last_name" varchar(150) NOT NULL, "email" varchar(254) NOT NULL,
                 "is_staff" bool NOT NULL, "is_active" bool NOT NULL,
                 "date_joined" datetime NOT NULL, "first_name" varchar(150) NOT NULL);
               INSERT INTO "{table}" VALUES
                 (1, '', NULL, 0, 'alice', '', '', 0, 1, '2024-01-01 00:00:00', ''),
                 (2, '', NULL, 0, 'bob', '', '', 0, 0, '2024-01-01 00:00:00', '');"#
        ))
        .expect("create auth_user");
        db
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.0.display())
    }

    fn config(&self) -> UserDbConfig {
        UserDbConfig {
            url: self.url(),
            table: "auth_user".into(),
            cache_ttl: Duration::from_millis(300),
            cache_size: 10,
        }
    }

    fn execute(&self, sql: &str) {
        let conn = rusqlite::Connection::open(&self.0).expect("open sqlite file");
        conn.execute_batch(sql).expect(sql);
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn claims(id: UserId) -> Claims {
    Claims {
        user_id: id,
        username: Some("from-token".into()),
        exp: f64::MAX,
    }
}

async fn lookup(dir: &DjangoUserDirectory, id: i64) -> Result<String, AuthError> {
    dir.lookup(&claims(UserId::Int(id)))
        .await
        .map(|u| u.username)
}

#[tokio::test]
async fn sqlite_known_unknown_and_inactive_users() {
    let db = TempDb::django("auth_user");
    let dir = DjangoUserDirectory::new(&db.config()).expect("directory");
    let alice = dir.lookup(&claims(UserId::Int(1))).await.expect("alice");
    assert_eq!(
        (alice.id, alice.username.as_str()),
        (UserId::Int(1), "alice"),
        "username comes from the table"
    );
    assert!(matches!(
        lookup(&dir, 2).await,
        Err(AuthError::InactiveUser)
    ));
    assert!(matches!(lookup(&dir, 3).await, Err(AuthError::UnknownUser)));
    let text = |s: &str| claims(UserId::Str(s.into()));
    assert!(matches!(
        dir.lookup(&text("abc")).await,
        Err(AuthError::UnknownUser)
    ));

    // Cached for the TTL, then read again: deactivating alice takes effect after it.
    db.execute("UPDATE auth_user SET is_active = 0 WHERE id = 1");
    assert_eq!(
        lookup(&dir, 1).await.ok().as_deref(),
        Some("alice"),
        "cached"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        matches!(lookup(&dir, 1).await, Err(AuthError::InactiveUser)),
        "cache expired"
    );
}

#[tokio::test]
async fn sqlite_cache_is_bounded_and_forgets_the_oldest() {
    let db = TempDb::django("auth_user");
    let config = UserDbConfig {
        cache_ttl: Duration::from_secs(60),
        cache_size: 2,
        ..db.config()
    };
    let dir = DjangoUserDirectory::new(&config).expect("directory");
    assert!(lookup(&dir, 1).await.is_ok());
    db.execute("UPDATE auth_user SET is_active = 0 WHERE id = 1");
    assert!(lookup(&dir, 1).await.is_ok(), "cached");
    // Two more users fill the cache; alice's entry, the oldest, makes room.
    assert!(lookup(&dir, 2).await.is_err());
    assert!(lookup(&dir, 3).await.is_err());
    assert!(
        matches!(lookup(&dir, 1).await, Err(AuthError::InactiveUser)),
        "evicted, so read again"
    );
}

#[tokio::test]
async fn sqlite_custom_user_table() {
    let db = TempDb::django("accounts_user");
    let config = UserDbConfig {
        table: "accounts_user".into(),
        ..db.config()
    };
    let dir = DjangoUserDirectory::new(&config).expect("directory");
    assert_eq!(lookup(&dir, 1).await.ok().as_deref(), Some("alice"));
}

#[tokio::test]
async fn sqlite_missing_or_broken_file_refuses_and_recovers() {
    let db = TempDb::path_only();
    let dir = DjangoUserDirectory::new(&db.config()).expect("a missing file is not a config error");
    assert!(matches!(
        lookup(&dir, 1).await,
        Err(AuthError::Directory(_))
    ));
    assert!(
        !db.0.exists(),
        "opened read-only: the file is never created"
    );

    std::fs::write(&db.0, b"not a database").expect("write");
    assert!(matches!(
        lookup(&dir, 1).await,
        Err(AuthError::Directory(_))
    ));

    // The file appears (Django's first `migrate`): failures were not cached, the store re-opens.
    std::fs::remove_file(&db.0).expect("remove");
    let real = TempDb::django("auth_user");
    std::fs::rename(&real.0, &db.0).expect("move into place");
    assert_eq!(lookup(&dir, 1).await.ok().as_deref(), Some("alice"));

    // A wrong --user-table is a database error (refused), never "unknown user".
    let no_table = UserDbConfig {
        table: "missing_table".into(),
        ..db.config()
    };
    let dir = DjangoUserDirectory::new(&no_table).expect("directory");
    assert!(matches!(
        lookup(&dir, 1).await,
        Err(AuthError::Directory(_))
    ));
}

#[tokio::test]
async fn user_db_urls_are_checked_at_startup() {
    let with = |url: &str| UserDbConfig {
        url: url.into(),
        table: "auth_user".into(),
        cache_ttl: Duration::from_secs(30),
        cache_size: 10,
    };
    for bad in [
        "mysql://root:secret@db/app",
        "sqlite://",
        "sqlite:///",
        "/srv/db.sqlite3",
    ] {
        match DjangoUserDirectory::new(&with(bad)) {
            Err(Error::Config(msg)) => {
                assert!(msg.contains("--user-db"), "{bad}: {msg}");
                assert!(
                    !msg.contains("secret"),
                    "the URL's password stays out: {msg}"
                );
            }
            Err(e) => panic!("{bad}: not a config error: {e}"),
            Ok(_) => panic!("{bad} accepted"),
        }
    }
    for good in [
        "sqlite:///srv/app/db.sqlite3",
        "sqlite:////srv/app/db.sqlite3",
        "postgres://u@localhost/app",
        "postgresql://u@localhost/app",
        "host=localhost user=u dbname=app",
    ] {
        assert!(DjangoUserDirectory::new(&with(good)).is_ok(), "{good}");
    }
    let bad_table = UserDbConfig {
        table: "auth_user; DROP TABLE x".into(),
        ..with("sqlite:///srv/db.sqlite3")
    };
    assert!(DjangoUserDirectory::new(&bad_table).is_err());

    // The server refuses to start with a bad scheme.
    let mut config = common::config();
    config.user_db = Some(with("mysql://db/app"));
    assert!(matches!(AppState::new(config), Err(Error::Config(_))));
}

#[tokio::test]
async fn sqlite_handshake_uses_the_django_user_table() {
    let db = TempDb::django("auth_user");
    common::userdb::assert_handshake_uses_user_table(db.config()).await;
}

#[tokio::test]
async fn sqlite_a_deactivated_users_idle_connection_is_closed() {
    let db = TempDb::django("auth_user");
    common::userdb::assert_revoked_user_is_closed(db.config(), || async {
        db.execute("UPDATE auth_user SET is_active = 0 WHERE id = 1");
    })
    .await;
}

#[tokio::test]
async fn sqlite_connected_users_are_rechecked_in_one_batch() {
    let db = TempDb::django("auth_user");
    let dir = DjangoUserDirectory::new(&db.config()).expect("directory");
    let ids: Vec<UserId> = (1..=600).map(UserId::Int).collect();
    let refused = dir.refused_among(&ids).await.expect("answers");
    assert_eq!(
        refused,
        ids[1..],
        "only alice (1) is active; 600 ids span two batches"
    );
}
