//! Streaming import of plays (`user_id, track_id, timestamp`) into per-(user, track)
//! aggregates: the first-listen timestamp and the play count.
//!
//! The real file has hundreds of millions of rows, so it is read as bytes, one line at a
//! time, and only the aggregates are kept in memory.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use rustc_hash::FxHashMap;

use super::error::ImportError;
use super::time::{format_timestamp, parse_timestamp};
use super::vocab::Vocab;

/// What to do with a play whose track is not in the catalog (has no embedding).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MissingTracks {
    /// Skip the play and report how many were skipped.
    #[default]
    Skip,
    /// Stop the import with an error naming the line.
    Fail,
}

/// Aggregated interactions, one entry per (user, track), sorted by user, then first
/// listen, then track. Users are indexed by `users`; tracks by the catalog.
#[derive(Debug, Clone, Default)]
pub struct Interactions {
    pub users: Vocab,
    pub user: Vec<u32>,
    pub track: Vec<u32>,
    pub first_ts: Vec<i64>,
    pub count: Vec<u32>,
}

/// Counts reported by an import.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlayStats {
    /// Data rows read (header excluded).
    pub rows: u64,
    /// Rows dropped because they are older than the keep-from date.
    pub before_keep_from: u64,
    /// Rows dropped because their track has no embedding.
    pub unknown_track: u64,
}

impl Interactions {
    pub fn len(&self) -> usize {
        self.user.len()
    }

    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
    }

    /// Builds the sorted columns from an aggregate map keyed by `user << 32 | track`.
    pub fn from_aggregates(users: Vocab, agg: FxHashMap<u64, (i64, u32)>) -> Self {
        let mut rows: Vec<(u32, i64, u32, u32)> = agg
            .into_iter()
            .map(|(k, (ts, c))| ((k >> 32) as u32, ts, k as u32, c))
            .collect();
        rows.sort_unstable();
        let mut out = Interactions {
            users,
            user: Vec::with_capacity(rows.len()),
            track: Vec::with_capacity(rows.len()),
            first_ts: Vec::with_capacity(rows.len()),
            count: Vec::with_capacity(rows.len()),
        };
        for (u, ts, t, c) in rows {
            out.user.push(u);
            out.first_ts.push(ts);
            out.track.push(t);
            out.count.push(c);
        }
        out
    }
}

pub const PLAYS_HEADER: [&str; 3] = ["user_id", "track_id", "timestamp"];

/// Reads a plays TSV, keeping rows with `timestamp >= keep_from`, and aggregates them.
/// `tracks` is the catalog; plays of other tracks follow `missing`.
pub fn read_plays(
    path: &Path,
    tracks: &Vocab,
    keep_from: i64,
    missing: MissingTracks,
    progress: &dyn Fn(u64),
) -> Result<(Interactions, PlayStats), ImportError> {
    let file = File::open(path).map_err(ImportError::io(path))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::with_capacity(256);
    let io = ImportError::io;

    reader.read_until(b'\n', &mut line).map_err(io(path))?;
    let header = String::from_utf8_lossy(strip_eol(&line)).into_owned();
    if header.split('\t').map(str::trim).ne(PLAYS_HEADER) {
        return Err(ImportError::Header {
            path: path.into(),
            expected: PLAYS_HEADER.join("\\t"),
            found: header.replace('\t', "\\t"),
        });
    }

    let mut users = Vocab::new();
    let mut agg: FxHashMap<u64, (i64, u32)> = FxHashMap::default();
    let mut stats = PlayStats::default();
    let mut line_no = 1u64;
    // Onion files are grouped by user: remember the last one to skip most hash lookups.
    let mut last_user: Option<(Vec<u8>, u32)> = None;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(io(path))? == 0 {
            break;
        }
        line_no += 1;
        let row = strip_eol(&line);
        if row.is_empty() {
            continue;
        }
        stats.rows += 1;
        if stats.rows % (1 << 20) == 0 {
            progress(stats.rows);
        }
        let mut cols = row.split(|&b| b == b'\t');
        let (Some(u), Some(t), Some(ts), None) =
            (cols.next(), cols.next(), cols.next(), cols.next())
        else {
            return Err(ImportError::Columns {
                path: path.into(),
                line: line_no,
                expected: 3,
                found: row.split(|&b| b == b'\t').count(),
            });
        };
        let ts = parse_timestamp(ts).ok_or_else(|| ImportError::Timestamp {
            path: path.into(),
            line: line_no,
            value: String::from_utf8_lossy(ts).into_owned(),
        })?;
        if u.is_empty() || t.is_empty() {
            return Err(ImportError::Line {
                path: path.into(),
                line: line_no,
                detail: "empty user or track id".into(),
            });
        }
        if ts < keep_from {
            stats.before_keep_from += 1;
            continue;
        }
        let track_str = std::str::from_utf8(t).map_err(|_| utf8_error(path, line_no))?;
        let Some(track) = tracks.get(track_str) else {
            match missing {
                MissingTracks::Skip => {
                    stats.unknown_track += 1;
                    continue;
                }
                MissingTracks::Fail => {
                    return Err(ImportError::UnknownTrack {
                        path: path.into(),
                        line: line_no,
                        track: track_str.into(),
                    });
                }
            }
        };
        let user = match &last_user {
            Some((bytes, idx)) if bytes.as_slice() == u => *idx,
            _ => {
                let s = std::str::from_utf8(u).map_err(|_| utf8_error(path, line_no))?;
                let idx = users.intern(s);
                last_user = Some((u.to_vec(), idx));
                idx
            }
        };
        let e = agg
            .entry(((user as u64) << 32) | track as u64)
            .or_insert((ts, 0));
        e.0 = e.0.min(ts);
        e.1 += 1;
    }
    if agg.is_empty() {
        return Err(ImportError::Empty {
            path: path.into(),
            keep_from: format_timestamp(keep_from),
        });
    }
    Ok((Interactions::from_aggregates(users, agg), stats))
}

fn utf8_error(path: &Path, line: u64) -> ImportError {
    ImportError::Line {
        path: path.into(),
        line,
        detail: "id is not valid UTF-8".into(),
    }
}

pub(crate) fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}
