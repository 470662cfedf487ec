//! Databases for tests: a fresh, uuid-named Postgres database under `TEST_DATABASE_URL`
//! (shared by the API and core test binaries through `#[path]`).

use sqlx::Connection;

/// `Some` when Postgres tests should run. CI always sets `TEST_DATABASE_URL`; elsewhere
/// its absence skips them with a note.
pub fn postgres_available() -> Option<()> {
    if std::env::var("TEST_DATABASE_URL").is_ok() {
        return Some(());
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI must set TEST_DATABASE_URL"
    );
    eprintln!("TEST_DATABASE_URL is not set: skipping the Postgres variant");
    None
}

/// A new empty Postgres database next to `TEST_DATABASE_URL`'s; its URL.
pub async fn fresh_postgres() -> String {
    let base = std::env::var("TEST_DATABASE_URL").expect("checked by the caller");
    let name = format!("audiorec_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .expect("connect to TEST_DATABASE_URL");
    drop_earlier_test_databases(&mut conn).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let (prefix, _) = base.rsplit_once('/').expect("a database URL has a path");
    format!("{prefix}/{name}")
}

/// Drops the databases that earlier runs of this suite left behind, once per process
/// (cargo runs one test binary at a time, so none of them is in use).
async fn drop_earlier_test_databases(conn: &mut sqlx::PgConnection) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE datname LIKE 'audiorec\\_test\\_%'",
        )
        .fetch_all(&mut *conn)
        .await
        .expect("list test databases");
        for name in names {
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut *conn)
                .await
                .expect("drop an old test database");
        }
    })
    .await;
}
