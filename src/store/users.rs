//! Users, their aggregated plays, and idempotent listen ingestion.

use sqlx::Row;

use super::{Pool, Store, StoreError, now, on_pool};

#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub user_id: String,
    pub created_at: i64,
    /// Distinct tracks listened to.
    pub tracks: i64,
    /// Total plays.
    pub plays: i64,
}

/// One aggregated (user, track) entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayRecord {
    pub track: u32,
    pub first_ts: i64,
    pub count: i64,
}

/// What an append did: new listens counted, and repeats of listens already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppendOutcome {
    pub accepted: usize,
    pub duplicates: usize,
}

/// Rows of a multi-row insert per statement (SQLite allows 32,766 parameters).
const CHUNK: usize = 5_000;

impl Store {
    /// Creates a user; `Conflict` if the id is taken.
    pub async fn create_user(&self, user_id: &str) -> Result<UserRecord, StoreError> {
        let created_at = now();
        let inserted = on_pool!(self, pool => sqlx::query(
            "INSERT INTO users (user_id, created_at) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(user_id)
        .bind(created_at)
        .execute(pool)
        .await?
        .rows_affected());
        if inserted == 0 {
            return Err(StoreError::Conflict(format!("user `{user_id}`")));
        }
        Ok(UserRecord {
            user_id: user_id.into(),
            created_at,
            tracks: 0,
            plays: 0,
        })
    }

    pub async fn get_user(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
        let sql = "SELECT u.user_id, u.created_at, \
                   (SELECT COUNT(*) FROM plays p WHERE p.user_id = u.user_id) AS tracks, \
                   (SELECT CAST(COALESCE(SUM(p.play_count), 0) AS BIGINT) FROM plays p WHERE p.user_id = u.user_id) AS plays \
                   FROM users u WHERE u.user_id = $1";
        let row = on_pool!(self, pool => sqlx::query(sql).bind(user_id).fetch_optional(pool).await?
            .map(|r| -> Result<UserRecord, sqlx::Error> {
                Ok(UserRecord {
                    user_id: r.try_get("user_id")?,
                    created_at: r.try_get("created_at")?,
                    tracks: r.try_get("tracks")?,
                    plays: r.try_get("plays")?,
                })
            })
            .transpose()?);
        Ok(row)
    }

    pub async fn user_exists(&self, user_id: &str) -> Result<bool, StoreError> {
        let sql = "SELECT COUNT(*) FROM users WHERE user_id = $1";
        let n: i64 =
            on_pool!(self, pool => sqlx::query_scalar(sql).bind(user_id).fetch_one(pool).await?);
        Ok(n > 0)
    }

    /// The user's tracks in first-listen order: the history every model reads. Served
    /// from memory where this process is the database's only writer.
    pub async fn history(&self, user_id: &str) -> Result<std::sync::Arc<[u32]>, StoreError> {
        self.histories
            .get(user_id, self.load_history(user_id))
            .await
    }

    async fn load_history(&self, user_id: &str) -> Result<Vec<u32>, StoreError> {
        // One aggregated row, not one row per track: sqlx's SQLite driver hands every row
        // from its worker thread to the caller separately, and a 300-track history then
        // cost 300 thread hand-offs, most of a recommendation's time under load.
        let tracks: Vec<i64> = match &self.pool {
            Pool::Postgres(pool) => {
                let sql = "SELECT array_agg(track_idx ORDER BY first_ts, track_idx) \
                           FROM plays WHERE user_id = $1";
                let tracks: Option<Vec<i64>> = sqlx::query_scalar(sql)
                    .bind(user_id)
                    .fetch_one(pool)
                    .await?;
                tracks.unwrap_or_default()
            }
            Pool::Sqlite(pool) => {
                let sql = "SELECT group_concat(track_idx, ',' ORDER BY first_ts, track_idx) \
                           FROM plays WHERE user_id = $1";
                let list: Option<String> = sqlx::query_scalar(sql)
                    .bind(user_id)
                    .fetch_one(pool)
                    .await?;
                list.unwrap_or_default()
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(|t| {
                        t.parse().map_err(|_| {
                            StoreError::Corrupt(format!(
                                "track index {t:?} in the plays of {user_id}"
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        Ok(tracks.into_iter().map(|t| t as u32).collect())
    }

    /// A page of the user's aggregated plays, oldest first listen first.
    pub async fn list_plays(
        &self,
        user_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<PlayRecord>, StoreError> {
        let sql = "SELECT track_idx, first_ts, play_count FROM plays WHERE user_id = $1 \
                   ORDER BY first_ts, track_idx LIMIT $2 OFFSET $3";
        let rows = on_pool!(self, pool => sqlx::query(sql).bind(user_id).bind(limit).bind(offset).fetch_all(pool).await?
            .iter()
            .map(|r| -> Result<PlayRecord, sqlx::Error> {
                Ok(PlayRecord {
                    track: r.try_get::<i64, _>("track_idx")? as u32,
                    first_ts: r.try_get("first_ts")?,
                    count: r.try_get("play_count")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?);
        Ok(rows)
    }

    /// Appends listens `(track, timestamp)` in one transaction. A listen already stored
    /// (same user, track and second) is a duplicate and changes nothing, so a retried
    /// batch does not double-count; new ones update the (user, track) aggregates.
    pub async fn append_listens(
        &self,
        user_id: &str,
        listens: &[(u32, i64)],
    ) -> Result<AppendOutcome, StoreError> {
        let mut unique: Vec<(u32, i64)> = listens.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let mut fresh: Vec<(u32, i64)> = Vec::with_capacity(unique.len());
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for chunk in unique.chunks(CHUNK) {
                let mut sql = String::from("INSERT INTO listens (user_id, track_idx, ts) VALUES ");
                push_rows(&mut sql, chunk.len(), 3);
                sql.push_str(" ON CONFLICT DO NOTHING RETURNING track_idx, ts");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for &(t, ts) in chunk {
                    q = q.bind(user_id).bind(t as i64).bind(ts);
                }
                for r in q.fetch_all(&mut *tx).await? {
                    fresh.push((r.try_get::<i64, _>(0)? as u32, r.try_get(1)?));
                }
            }
            // Aggregate the new listens per track, then upsert the aggregates.
            fresh.sort_unstable();
            let mut agg: Vec<(u32, i64, i64)> = Vec::new();
            for &(t, ts) in &fresh {
                match agg.last_mut() {
                    Some(last) if last.0 == t => last.2 += 1,
                    _ => agg.push((t, ts, 1)),
                }
            }
            for chunk in agg.chunks(CHUNK) {
                let mut sql = String::from("INSERT INTO plays (user_id, track_idx, first_ts, play_count) VALUES ");
                push_rows(&mut sql, chunk.len(), 4);
                sql.push_str(
                    " ON CONFLICT (user_id, track_idx) DO UPDATE SET \
                     first_ts = CASE WHEN excluded.first_ts < plays.first_ts THEN excluded.first_ts ELSE plays.first_ts END, \
                     play_count = plays.play_count + excluded.play_count",
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for &(t, ts, c) in chunk {
                    q = q.bind(user_id).bind(t as i64).bind(ts).bind(c);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        self.histories.invalidate(user_id);
        Ok(AppendOutcome {
            accepted: fresh.len(),
            duplicates: listens.len() - fresh.len(),
        })
    }
}

/// Appends `($1, $2, …), (…)` placeholders for `rows` rows of `cols` values.
pub(super) fn push_rows(sql: &mut String, rows: usize, cols: usize) {
    use std::fmt::Write;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            let _ = write!(
                sql,
                "{}${}",
                if c == 0 { "" } else { ", " },
                r * cols + c + 1
            );
        }
        sql.push(')');
    }
}
