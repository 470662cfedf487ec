//! The catalogue's change log: tracks added (with their rows) and withdrawn after the
//! import, numbered so that every service instance applies them in one order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Store, StoreError, now, on_pool};

/// One change to the catalogue, numbered by the database (`seq` increases by one per
/// change, across replicas).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Add {
        seq: i64,
        index: u32,
        track_id: String,
        /// Row per backend; backends not named have none for this track.
        rows: BTreeMap<String, Vec<f32>>,
        details: TrackDetails,
    },
    Withdraw {
        seq: i64,
        index: u32,
    },
}

impl Change {
    pub fn seq(&self) -> i64 {
        match self {
            Change::Add { seq, .. } | Change::Withdraw { seq, .. } => *seq,
        }
    }
}

/// What is known of an added track besides its rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackDetails {
    /// Unix seconds when it was added.
    #[schema(example = 1764504000)]
    pub added_at: i64,
    /// `audio` (embedded here from an upload) or `rows` (posted embeddings).
    #[schema(example = "audio")]
    pub source: String,
    /// Seconds of audio, for an upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 30.0)]
    pub duration_s: Option<f64>,
    /// MusiCNN's most probable MSD tags for an upload, best first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

/// An MSD tag with its probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tag {
    #[schema(example = "rock")]
    pub tag: String,
    #[schema(example = 0.62)]
    pub probability: f32,
}

/// Attempts at numbering a change when another instance took the same numbers first
/// (Postgres; SQLite serialises writers).
const ATTEMPTS: usize = 5;

impl Store {
    /// Stores a new track with its rows as the next change (the service applies it by
    /// reading the log back, as every replica does). `Conflict` if the id is taken, by an
    /// imported or an added track, withdrawn or not.
    pub async fn add_track(
        &self,
        track_id: &str,
        rows: &BTreeMap<String, Vec<f32>>,
        details: &TrackDetails,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(details).expect("details serialise");
        numbered(|| self.try_add_track(track_id, rows, &text)).await
    }

    async fn try_add_track(
        &self,
        track_id: &str,
        rows: &BTreeMap<String, Vec<f32>>,
        details: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let index: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(idx), -1) + 1 FROM tracks")
                .fetch_one(&mut *tx)
                .await?;
            let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM catalogue_changes")
                .fetch_one(&mut *tx)
                .await?;
            let inserted = sqlx::query(
                "INSERT INTO tracks (idx, track_id) VALUES ($1, $2) ON CONFLICT (track_id) DO NOTHING",
            )
            .bind(index)
            .bind(track_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("track `{track_id}`")));
            }
            for (backend, row) in rows {
                sqlx::query("INSERT INTO track_rows (track_idx, backend, row_hex) VALUES ($1, $2, $3)")
                    .bind(index)
                    .bind(backend)
                    .bind(encode_row(row))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO catalogue_changes (seq, track_idx, kind, details, at) VALUES ($1, $2, 'add', $3, $4)",
            )
            .bind(seq)
            .bind(index)
            .bind(details)
            .bind(now())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Stores the withdrawal of track `index` as the next change; `false` if it was
    /// withdrawn already.
    pub async fn withdraw_track(&self, index: u32) -> Result<bool, StoreError> {
        numbered(|| self.try_withdraw_track(index)).await
    }

    async fn try_withdraw_track(&self, index: u32) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let done: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM catalogue_changes WHERE track_idx = $1 AND kind = 'withdraw'",
            )
            .bind(index as i64)
            .fetch_one(&mut *tx)
            .await?;
            if done > 0 {
                return Ok(false);
            }
            let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM catalogue_changes")
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO catalogue_changes (seq, track_idx, kind, at) VALUES ($1, $2, 'withdraw', $3)",
            )
            .bind(seq)
            .bind(index as i64)
            .bind(now())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The changes after `seq`, in order, each add with its rows.
    pub async fn catalogue_changes(&self, after: i64) -> Result<Vec<Change>, StoreError> {
        on_pool!(self, pool => {
            let changes = sqlx::query(
                "SELECT c.seq, c.track_idx, c.kind, c.details, t.track_id FROM catalogue_changes c \
                 JOIN tracks t ON t.idx = c.track_idx WHERE c.seq > $1 ORDER BY c.seq",
            )
            .bind(after)
            .fetch_all(pool)
            .await?;
            let rows = sqlx::query(
                "SELECT r.track_idx, r.backend, r.row_hex FROM track_rows r \
                 JOIN catalogue_changes c ON c.track_idx = r.track_idx AND c.kind = 'add' \
                 WHERE c.seq > $1",
            )
            .bind(after)
            .fetch_all(pool)
            .await?;
            let mut by_track: BTreeMap<i64, BTreeMap<String, Vec<f32>>> = BTreeMap::new();
            for r in rows {
                let index: i64 = r.try_get(0)?;
                let hex: String = r.try_get(2)?;
                let row = decode_row(&hex).ok_or_else(|| {
                    StoreError::Corrupt(format!("the row of track {index} is not hex float32"))
                })?;
                by_track.entry(index).or_default().insert(r.try_get(1)?, row);
            }
            changes
                .iter()
                .map(|r| {
                    let (seq, index, kind): (i64, i64, String) =
                        (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                    Ok(match kind.as_str() {
                        "add" => Change::Add {
                            seq,
                            index: index as u32,
                            track_id: r.try_get(4)?,
                            rows: by_track.remove(&index).unwrap_or_default(),
                            details: parse_details(seq, r.try_get(3)?)?,
                        },
                        "withdraw" => Change::Withdraw {
                            seq,
                            index: index as u32,
                        },
                        other => {
                            return Err(StoreError::Corrupt(format!(
                                "change {seq} has kind `{other}`"
                            )));
                        }
                    })
                })
                .collect()
        })
    }

    /// The imported catalogue in index order (tracks added through the API left out), to
    /// check it against the dataset's.
    pub async fn imported_track_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT track_id FROM tracks WHERE idx NOT IN \
             (SELECT track_idx FROM catalogue_changes WHERE kind = 'add') ORDER BY idx",
        )
        .fetch_all(pool)
        .await?))
    }
}

fn parse_details(seq: i64, text: Option<String>) -> Result<TrackDetails, StoreError> {
    serde_json::from_str(text.as_deref().unwrap_or("{}"))
        .map_err(|e| StoreError::Corrupt(format!("details of change {seq}: {e}")))
}

/// Runs `attempt` (one transaction taking the log's next numbers) again while another
/// instance took the same numbers first.
async fn numbered<T, F: Future<Output = Result<T, StoreError>>>(
    mut attempt: impl FnMut() -> F,
) -> Result<T, StoreError> {
    for n in 1..ATTEMPTS {
        match attempt().await {
            Err(StoreError::Database(e)) if is_unique_violation(&e) => {
                tracing::debug!(
                    attempt = n,
                    "catalogue numbers taken by another instance; retrying"
                );
            }
            outcome => return outcome,
        }
    }
    attempt().await
}

/// A unique-key violation (SQLSTATE 23505 on Postgres, 2067/1555 on SQLite).
fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

fn encode_row(row: &[f32]) -> String {
    use std::fmt::Write;
    let mut hex = String::with_capacity(row.len() * 8);
    for byte in row.iter().flat_map(|v| v.to_le_bytes()) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

fn decode_row(hex: &str) -> Option<Vec<f32>> {
    if !hex.len().is_multiple_of(8) || !hex.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    (0..hex.len())
        .step_by(8)
        .map(|at| {
            let b = [byte(at)?, byte(at + 2)?, byte(at + 4)?, byte(at + 6)?];
            Some(f32::from_le_bytes(b))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_bit_for_bit() {
        let row = [0.0, -0.0, 1.5e-39, f32::MAX, -3.25, 1.0 / 3.0];
        let back = decode_row(&encode_row(&row)).unwrap();
        assert!(
            row.iter()
                .zip(&back)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        assert_eq!(decode_row("abc"), None);
        assert_eq!(decode_row("zz000000"), None);
    }
}
