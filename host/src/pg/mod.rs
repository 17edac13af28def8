//! PostgreSQL: where the database is, the connection pool, and the
//! versioned migrations of Cairn's schema (ARCHITECTURE.md, "Beyond one
//! machine"; issue 24, step 1).
//!
//! Migrations are SQL files embedded in the binary
//! (`host/src/pg/migrations/NNNN_name.sql`), applied in order, all of
//! those not yet applied in one transaction, under a transaction-level
//! advisory lock: any number of processes may start at once and each
//! migration is applied exactly once. Each applied migration is recorded
//! in `cairn_migrations` with the SHA-256 of its text; a recorded one whose
//! text differs from this binary's, or one this binary does not know (a
//! newer Cairn migrated the database), is refused before anything changes.
//!
//! Owns talking to the server; must never hold a connection across an
//! await on anything but the database, and never puts a password in a
//! message (`Target`'s `Display` leaves it out).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

/// The advisory lock key under which migrations are applied (ASCII
/// "cairnmig").
const MIGRATION_LOCK: i64 = 0x6361_6972_6e6d_6967;

/// One migration: its version, name and SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// `sha256:<hex>` of its SQL text.
    #[must_use]
    pub fn digest(&self) -> String {
        let mut hex = String::with_capacity(71);
        hex.push_str("sha256:");
        crate::digest::push_hex(&mut hex, &Sha256::digest(self.sql.as_bytes()));
        hex
    }
}

/// Cairn's schema, in order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "state",
    sql: include_str!("migrations/0001_state.sql"),
}];

/// What went wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("`{0}` is not a PostgreSQL URL: write `postgres://USER@HOST:PORT/DATABASE`")]
    Url(String),
    #[error("cannot reach the database at {target}: {message}")]
    Connect { target: String, message: String },
    #[error("the database at {target}: {message}")]
    Query { target: String, message: String },
    #[error(
        "the database's migration {version} (`{name}`) is not the one this cairn has (its text changed); restore it or use a database of its own"
    )]
    Changed { version: i32, name: String },
    #[error(
        "the database is at schema version {found}, newer than this cairn knows ({known}): upgrade cairn"
    )]
    Newer { found: i32, known: i32 },
    #[error("no connection to the database at {target}: {message}")]
    Pool { target: String, message: String },
}

/// An error and its causes, one line (tokio-postgres says "error
/// connecting to server" and keeps the why in its source).
fn describe(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// Where the database is: a `postgres://` URL (or key=value settings) as
/// `--database` and `CAIRN_DATABASE_URL` give it.
#[derive(Clone)]
pub struct Target {
    config: tokio_postgres::Config,
}

impl FromStr for Target {
    type Err = PgError;

    fn from_str(url: &str) -> Result<Self, PgError> {
        let shown = || {
            // The text as given, without what could be a password.
            let cut = url.find('@').map_or(url, |at| url.get(at..).unwrap_or(url));
            cut.chars().take(100).collect::<String>()
        };
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| PgError::Url(shown()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("cairn");
        }
        Ok(Self { config })
    }
}

impl fmt::Display for Target {
    /// `USER@HOST:PORT/DATABASE`, never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        write!(
            f,
            "{}@{host}:{port}/{}",
            self.config.get_user().unwrap_or("?"),
            self.config.get_dbname().unwrap_or("?")
        )
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self})")
    }
}

impl Target {
    /// The same server with `search_path` set to `schema` for every
    /// session (tests give each its own schema).
    #[must_use]
    pub fn in_schema(&self, schema: &str) -> Self {
        let mut config = self.config.clone();
        config.options(format!("-c search_path={schema}"));
        Self { config }
    }

    /// A pool of at most `size` connections. Connections are made when
    /// first needed; one the server closed (a restart) is replaced.
    ///
    /// # Errors
    ///
    /// Only a pool that cannot be built (never for a parsed target).
    pub fn pool(&self, size: usize) -> Result<deadpool_postgres::Pool, PgError> {
        let manager = deadpool_postgres::Manager::from_config(
            self.config.clone(),
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        deadpool_postgres::Pool::builder(manager)
            .max_size(size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| PgError::Pool {
                target: self.to_string(),
                message: e.to_string(),
            })
    }

    /// One connection, its connection task spawned on the runtime.
    ///
    /// # Errors
    ///
    /// No server, refused credentials.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, PgError> {
        let (client, connection) =
            self.config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| PgError::Connect {
                    target: self.to_string(),
                    message: describe(&e),
                })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "database connection ended");
            }
        });
        Ok(client)
    }
}

/// Bring the database to this binary's schema: the versions applied now
/// (empty when it already was).
///
/// # Errors
///
/// Connection and SQL errors, a changed migration, a newer database.
pub async fn migrate(
    client: &mut tokio_postgres::Client,
    target: &Target,
) -> Result<Vec<i32>, PgError> {
    apply(client, target, MIGRATIONS).await
}

async fn apply(
    client: &mut tokio_postgres::Client,
    target: &Target,
    migrations: &[Migration],
) -> Result<Vec<i32>, PgError> {
    let query = |e: tokio_postgres::Error| PgError::Query {
        target: target.to_string(),
        message: describe(&e),
    };
    let tx = client.transaction().await.map_err(query)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(query)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS cairn_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(query)?;
    let rows = tx
        .query(
            "SELECT version, name, sha256 FROM cairn_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(query)?;
    let known = migrations.last().map_or(0, |m| m.version);
    let mut applied = std::collections::BTreeSet::new();
    for row in &rows {
        let version: i32 = row.try_get(0).map_err(query)?;
        let name: String = row.try_get(1).map_err(query)?;
        let sha256: String = row.try_get(2).map_err(query)?;
        let Some(ours) = migrations.iter().find(|m| m.version == version) else {
            return Err(PgError::Newer {
                found: version,
                known,
            });
        };
        if ours.digest() != sha256 {
            return Err(PgError::Changed { version, name });
        }
        applied.insert(version);
    }
    let mut now = Vec::new();
    for migration in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        tx.batch_execute(migration.sql).await.map_err(query)?;
        tx.execute(
            "INSERT INTO cairn_migrations (version, name, sha256) VALUES ($1, $2, $3)",
            &[&migration.version, &migration.name, &migration.digest()],
        )
        .await
        .map_err(query)?;
        now.push(migration.version);
    }
    tx.commit().await.map_err(query)?;
    Ok(now)
}

/// For tests: the database `CAIRN_TEST_DATABASE_URL` names (default the
/// local server's `test`), with a new schema of its own; `None`, saying
/// SKIPPED and why, when no server answers, unless
/// `CAIRN_REQUIRE_POSTGRES=1`, when that is a failure.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub(crate) const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

    pub(crate) async fn schema(test: &str) -> Option<Target> {
        let url =
            std::env::var("CAIRN_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let target: Target = url.parse().unwrap();
        let client = match target.connect().await {
            Ok(client) => client,
            Err(e) => {
                assert!(
                    std::env::var("CAIRN_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                    "CAIRN_REQUIRE_POSTGRES=1 and {e}"
                );
                eprintln!("SKIPPED {test}: {e} (set CAIRN_TEST_DATABASE_URL)");
                return None;
            }
        };
        let mut id = [0u8; 6];
        getrandom::fill(&mut id).unwrap();
        let mut name = String::from("cairn_test_");
        crate::digest::push_hex(&mut name, &id);
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        Some(target.in_schema(&name))
    }

    /// Drop the schema `target` was given by [`schema`].
    pub(crate) async fn drop_schema(target: &Target) {
        let client = target.connect().await.unwrap();
        let name: Option<String> = client
            .query_one("SELECT current_schema()", &[])
            .await
            .unwrap()
            .get(0);
        if let Some(name) = name.filter(|n| n.starts_with("cairn_test_")) {
            client
                .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
                .await
                .unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_never_shows_its_password() {
        let target: Target = "postgres://cairn:hunter2@db.internal:6543/prod"
            .parse()
            .unwrap();
        assert_eq!(target.to_string(), "cairn@db.internal:6543/prod");
        assert!(!format!("{target:?}").contains("hunter2"));
        let bad = "postgres://cairn:hunter2@db:notaport/x"
            .parse::<Target>()
            .unwrap_err()
            .to_string();
        assert!(!bad.contains("hunter2"), "{bad}");
        assert!(bad.contains("not a PostgreSQL URL"), "{bad}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrations_apply_once_under_concurrent_starts() {
        let Some(target) = testing::schema("migrations_apply_once_under_concurrent_starts").await
        else {
            return;
        };
        // Four processes starting at once: each migration applied once.
        let mut starts = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let target = target.clone();
            starts.spawn(async move {
                let mut client = target.connect().await.unwrap();
                migrate(&mut client, &target).await.unwrap()
            });
        }
        let mut applied = Vec::new();
        while let Some(done) = starts.join_next().await {
            applied.extend(done.unwrap());
        }
        assert_eq!(applied, [1]);
        let pool = target.pool(2).unwrap();
        let client = pool.get().await.unwrap();
        let tables: i64 = client
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() \
                 AND table_name IN ('runs', 'tasks', 'attempts', 'tokens', 'cache')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(tables, 5);
        drop(client);
        testing::drop_schema(&target).await;
    }

    #[tokio::test]
    async fn a_changed_or_newer_schema_is_refused_before_anything_changes() {
        let Some(target) =
            testing::schema("a_changed_or_newer_schema_is_refused_before_anything_changes").await
        else {
            return;
        };
        let mut client = target.connect().await.unwrap();
        let one = [Migration {
            version: 1,
            name: "one",
            sql: "CREATE TABLE one (x INTEGER)",
        }];
        assert_eq!(apply(&mut client, &target, &one).await.unwrap(), [1]);
        assert!(apply(&mut client, &target, &one).await.unwrap().is_empty());
        let changed = [
            Migration {
                version: 1,
                name: "one",
                sql: "CREATE TABLE one (x BIGINT)",
            },
            Migration {
                version: 2,
                name: "two",
                sql: "CREATE TABLE two (y INTEGER)",
            },
        ];
        let refused = apply(&mut client, &target, &changed).await.unwrap_err();
        assert!(
            matches!(refused, PgError::Changed { version: 1, .. }),
            "{refused}"
        );
        // Nothing of the refused run stayed: `two` was not made.
        let two: i64 = client
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'two'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(two, 0);
        let newer = apply(&mut client, &target, &[]).await.unwrap_err();
        assert!(
            matches!(newer, PgError::Newer { found: 1, known: 0 }),
            "{newer}"
        );
        testing::drop_schema(&target).await;
    }
}
