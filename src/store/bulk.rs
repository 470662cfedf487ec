//! Bulk loading an imported dataset: COPY on Postgres, one transaction of prepared
//! multi-row inserts on SQLite. All or nothing: a failure leaves the database as it was.

use sqlx::Row;

use super::users::push_rows;
use super::{Pool, Store, StoreError, now, on_pool};
use crate::dataset::{Interactions, Vocab};

/// Rows per multi-row insert on SQLite (4 values each, under its 32,766-parameter cap).
const SQLITE_ROWS: usize = 500;

impl Store {
    /// How many tracks the catalog table holds (0 before the first import).
    pub async fn track_count(&self) -> Result<i64, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query("SELECT COUNT(*) FROM tracks").fetch_one(pool).await?.try_get(0)?),
        )
    }

    /// Loads the catalog, the users and their aggregated plays into empty tables.
    pub async fn import(
        &self,
        tracks: &Vocab,
        interactions: &Interactions,
    ) -> Result<(), StoreError> {
        if self.track_count().await? > 0 {
            return Err(StoreError::Conflict(
                "a catalog (tracks are already imported)".into(),
            ));
        }
        let created = now();
        match &self.pool {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let copy = |table: &str, text: String| {
                    let stmt = format!("COPY {table} FROM STDIN");
                    (stmt, text)
                };
                let tables = [
                    copy(
                        "tracks (idx, track_id)",
                        tracks
                            .ids()
                            .enumerate()
                            .map(|(i, id)| format!("{i}\t{}\n", escape_copy(id)))
                            .collect(),
                    ),
                    copy(
                        "users (user_id, created_at)",
                        interactions
                            .users
                            .ids()
                            .map(|u| format!("{}\t{created}\n", escape_copy(u)))
                            .collect(),
                    ),
                ];
                for (stmt, text) in tables {
                    let mut c = tx.copy_in_raw(&stmt).await?;
                    c.send(text.into_bytes()).await?;
                    c.finish().await?;
                }
                let mut c = tx
                    .copy_in_raw("COPY plays (user_id, track_idx, first_ts, play_count) FROM STDIN")
                    .await?;
                let mut buf = String::with_capacity(1 << 20);
                for i in 0..interactions.len() {
                    let user = escape_copy(interactions.users.id(interactions.user[i]));
                    use std::fmt::Write;
                    let _ = writeln!(
                        buf,
                        "{user}\t{}\t{}\t{}",
                        interactions.track[i], interactions.first_ts[i], interactions.count[i]
                    );
                    if buf.len() > (1 << 20) {
                        c.send(std::mem::take(&mut buf).into_bytes()).await?;
                    }
                }
                c.send(buf.into_bytes()).await?;
                c.finish().await?;
                tx.commit().await?;
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let ids: Vec<&str> = tracks.ids().collect();
                for (n, chunk) in ids.chunks(SQLITE_ROWS).enumerate() {
                    let mut sql = String::from("INSERT INTO tracks (idx, track_id) VALUES ");
                    push_rows(&mut sql, chunk.len(), 2);
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for (i, id) in chunk.iter().enumerate() {
                        q = q.bind((n * SQLITE_ROWS + i) as i64).bind(*id);
                    }
                    q.execute(&mut *tx).await?;
                }
                let users: Vec<&str> = interactions.users.ids().collect();
                for chunk in users.chunks(SQLITE_ROWS) {
                    let mut sql = String::from("INSERT INTO users (user_id, created_at) VALUES ");
                    push_rows(&mut sql, chunk.len(), 2);
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for u in chunk {
                        q = q.bind(*u).bind(created);
                    }
                    q.execute(&mut *tx).await?;
                }
                let rows: Vec<usize> = (0..interactions.len()).collect();
                for chunk in rows.chunks(SQLITE_ROWS) {
                    let mut sql = String::from(
                        "INSERT INTO plays (user_id, track_idx, first_ts, play_count) VALUES ",
                    );
                    push_rows(&mut sql, chunk.len(), 4);
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for &i in chunk {
                        q = q
                            .bind(interactions.users.id(interactions.user[i]))
                            .bind(interactions.track[i] as i64)
                            .bind(interactions.first_ts[i])
                            .bind(interactions.count[i] as i64);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }
}

/// Escapes a value for COPY's text format.
fn escape_copy(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}
