//! Persistence with sqlx: PostgreSQL in production, an embedded SQLite file by default.
//!
//! Both databases run the same portable SQL (`$n` placeholders, integers, floats, text),
//! so each operation is written once and [`on_pool!`] instantiates it for either pool;
//! only the bulk load takes each database's fast path (COPY on Postgres, one prepared
//! transaction on SQLite). The API and the CLI see a [`Store`]; nothing else imports sqlx.

mod bulk;
mod experiments;
mod histories;
mod jobs;
mod runs;
mod tracks;
mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use experiments::{CellRecord, ExperimentRecord};
pub use jobs::{ClaimedJob, JobRecord, JobStatus, NewJob};
pub use runs::{NewRun, RunRecord, RunStatus, UserMetricRecord};
pub use tracks::{Change, Tag, TrackDetails};
pub use users::{AppendOutcome, PlayRecord, UserRecord};

/// Runs `$body` with `$pool` bound to the concrete pool, whichever database it is.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Postgres($pool) => $body,
            $crate::store::Pool::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the connection: the service is
    /// unavailable, not broken.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The service's health probe found the database down; nothing was tried.
    #[error("database unavailable (health check failed)")]
    Down,
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            sqlx::Error::Database(ref d) if d.code().is_some_and(|c| is_unavailable(&c)) => {
                StoreError::Unavailable(e)
            }
            e => StoreError::Database(e),
        }
    }
}

/// Postgres SQLSTATEs of a server going away rather than of a bad statement: connection
/// exceptions (class 08) and operator intervention (57P01 admin shutdown, 57P02 crash
/// shutdown, 57P03 cannot connect now).
fn is_unavailable(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

/// How long a request waits for a Postgres connection. Short, because a refused connection
/// is retried until then: the availability flag answers the following requests at once.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection pool to one of the two supported databases.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// The database, and what this process remembers of it.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// Stored users' histories (embedded SQLite only), forgotten by this store's own
    /// writes: see [`histories`].
    histories: std::sync::Arc<histories::Histories>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./sql");

impl Store {
    /// Connects to `postgres://…` or `sqlite://path` (the file is created if missing) and
    /// applies the migrations under `sql/`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(PG_ACQUIRE_TIMEOUT)
                .connect(url)
                .await
                .map_err(StoreError::Unavailable)?;
            Pool::Postgres(pool)
        } else {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(StoreError::Unavailable)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
                // Read pages through a memory map instead of copying them per read.
                .pragma("mmap_size", "1073741824");
            // The default file sits in `audiorec-data/`, which a first run in a fresh
            // folder has not made yet; SQLite creates the file but not its folder.
            let folder = options.get_filename().parent();
            if let Some(folder) = folder.filter(|f| !f.as_os_str().is_empty()) {
                std::fs::create_dir_all(folder).map_err(|e| {
                    StoreError::Unavailable(sqlx::Error::Io(std::io::Error::new(
                        e.kind(),
                        format!("cannot create {}: {e}", folder.display()),
                    )))
                })?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
                .map_err(StoreError::Unavailable)?;
            Pool::Sqlite(pool)
        };
        let store = Store {
            pool,
            histories: std::sync::Arc::new(histories::Histories::none()),
        };
        on_pool!(&store, pool => MIGRATOR.run(pool).await)?;
        Ok(store)
    }

    /// Remembers up to `capacity` stored users' histories, when this process is the only
    /// writer of the database (the embedded SQLite file); with Postgres, which other
    /// instances may write, every read goes to the database.
    pub fn remember_histories(mut self, capacity: usize) -> Self {
        if matches!(self.pool, Pool::Sqlite(_)) {
            self.histories = std::sync::Arc::new(histories::Histories::new(capacity));
        }
        self
    }

    /// Which database this is, for logs and `/ready`.
    pub fn kind(&self) -> &'static str {
        match self.pool {
            Pool::Postgres(_) => "postgres",
            Pool::Sqlite(_) => "sqlite",
        }
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))?;
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    /// The embedded default's folder may not exist yet (a first run in a fresh folder):
    /// connecting makes it, and the database is usable.
    #[tokio::test]
    async fn an_embedded_database_gets_its_missing_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not yet/made/audiorec.db");
        let store = super::Store::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        store.ping().await.unwrap();
        assert!(file.is_file());
    }
}
