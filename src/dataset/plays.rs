//! Streaming import of plays (`user_id, track_id, timestamp`) into per-(user, track)
//! aggregates: the first-listen timestamp and the play count.
//!
//! The real file has hundreds of millions of rows, so it is read as bytes, one line at a
//! time, and only the aggregates are kept in memory.

use std::io::Read;
use std::path::Path;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::time::{format_timestamp, parse_timestamp};
use crate::io::{ImportError, LineReader, Vocab, strip_eol};

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
        let rows = agg
            .into_iter()
            .map(|(k, (ts, c))| ((k >> 32) as u32, k as u32, ts, c))
            .collect();
        Self::from_rows(users, rows)
    }

    /// Builds the sorted columns from `(user, track, first listen, count)` rows in which a
    /// pair may appear more than once (pre-aggregated parts of the file): repeats are
    /// merged (earliest first listen, summed counts).
    pub fn from_rows(users: Vocab, mut rows: Vec<(u32, u32, i64, u32)>) -> Self {
        rows.par_sort_unstable_by_key(|r| (r.0, r.1));
        rows.dedup_by(|next, kept| {
            let same = (next.0, next.1) == (kept.0, kept.1);
            if same {
                kept.2 = kept.2.min(next.2);
                kept.3 += next.3;
            }
            same
        });
        rows.par_sort_unstable_by_key(|r| (r.0, r.2, r.1));
        let mut out = Interactions {
            users,
            user: Vec::with_capacity(rows.len()),
            track: Vec::with_capacity(rows.len()),
            first_ts: Vec::with_capacity(rows.len()),
            count: Vec::with_capacity(rows.len()),
        };
        for (u, t, ts, c) in rows {
            out.user.push(u);
            out.track.push(t);
            out.first_ts.push(ts);
            out.count.push(c);
        }
        out
    }
}

pub const PLAYS_HEADER: [&str; 3] = ["user_id", "track_id", "timestamp"];

/// Bytes of plays parsed by one task: large enough to amortise the hand-off, small enough
/// that a batch of them per core stays well under the memory budget.
const BLOCK: usize = 8 << 20;

/// Reads a plays TSV, keeping rows with `timestamp >= keep_from`, and aggregates them.
/// `tracks` is the catalog; plays of other tracks follow `missing`.
///
/// The file is read in blocks of whole lines that are parsed and pre-aggregated in
/// parallel (rayon); blocks are merged in file order, so users are numbered by first
/// appearance and the first bad line reported is the first in the file.
pub fn read_plays(
    path: &Path,
    tracks: &Vocab,
    keep_from: i64,
    missing: MissingTracks,
    progress: &dyn Fn(u64),
) -> Result<(Interactions, PlayStats), ImportError> {
    let mut lines = LineReader::open(path)?;
    let header = lines.header()?;
    if header.split('\t').map(str::trim).ne(PLAYS_HEADER) {
        return Err(ImportError::Header {
            path: path.into(),
            expected: PLAYS_HEADER.join("\\t"),
            found: header.replace('\t', "\\t"),
        });
    }

    let parser = BlockParser {
        tracks,
        keep_from,
        missing,
    };
    let mut reader = lines.into_inner();
    let batch = rayon::current_num_threads().max(1) * 2;
    let mut users = Vocab::new();
    let mut rows: Vec<(u32, u32, i64, u32)> = Vec::new();
    let mut stats = PlayStats::default();
    let mut line_base = 1u64;
    let mut carry: Vec<u8> = Vec::new();
    let mut eof = false;
    while !eof {
        let mut blocks = Vec::with_capacity(batch);
        while blocks.len() < batch && !eof {
            let mut buf = std::mem::take(&mut carry);
            let before = buf.len();
            (&mut reader)
                .take(BLOCK as u64)
                .read_to_end(&mut buf)
                .map_err(ImportError::io(path))?;
            if buf.len() == before {
                eof = true;
            } else {
                // Keep the partial last line for the next block.
                match memchr::memrchr(b'\n', &buf) {
                    Some(pos) => carry = buf.split_off(pos + 1),
                    None => {
                        carry = buf;
                        continue;
                    }
                }
            }
            if eof && !buf.is_empty() && buf.last() != Some(&b'\n') {
                buf.push(b'\n');
            }
            if !buf.is_empty() {
                blocks.push(buf);
            }
        }
        let parsed: Vec<Block> = blocks.par_iter().map(|b| parser.parse(b)).collect();
        for block in parsed {
            if let Some((line, error)) = block.error {
                return Err(error.into_import_error(path, line_base + line));
            }
            let global: Vec<u32> = block.users.iter().map(|u| users.intern(u)).collect();
            rows.extend(
                block
                    .pairs
                    .into_iter()
                    .map(|(u, t, ts, c)| (global[u as usize], t, ts, c)),
            );
            stats.rows += block.stats.rows;
            stats.before_keep_from += block.stats.before_keep_from;
            stats.unknown_track += block.stats.unknown_track;
            line_base += block.lines;
        }
        progress(stats.rows);
    }
    if rows.is_empty() {
        return Err(ImportError::Empty {
            path: path.into(),
            keep_from: format_timestamp(keep_from),
        });
    }
    Ok((Interactions::from_rows(users, rows), stats))
}

/// What went wrong on a line, before the line's number in the whole file is known.
enum LineError {
    Columns(usize),
    Timestamp(String),
    EmptyId,
    Utf8,
    UnknownTrack(String),
}

impl LineError {
    fn into_import_error(self, path: &Path, line: u64) -> ImportError {
        let path = path.into();
        match self {
            LineError::Columns(found) => ImportError::Columns {
                path,
                line,
                expected: 3,
                found,
            },
            LineError::Timestamp(value) => ImportError::Timestamp { path, line, value },
            LineError::EmptyId => ImportError::Line {
                path,
                line,
                detail: "empty user or track id".into(),
            },
            LineError::Utf8 => ImportError::Line {
                path,
                line,
                detail: "id is not valid UTF-8".into(),
            },
            LineError::UnknownTrack(track) => ImportError::UnknownTrack { path, line, track },
        }
    }
}

/// One block's result: its users in order of appearance, its (local user, track, first
/// listen, count) aggregates, and the first bad line (relative to the block) if any.
struct Block {
    users: Vec<Box<str>>,
    pairs: Vec<(u32, u32, i64, u32)>,
    stats: PlayStats,
    lines: u64,
    error: Option<(u64, LineError)>,
}

struct BlockParser<'a> {
    tracks: &'a Vocab,
    keep_from: i64,
    missing: MissingTracks,
}

impl BlockParser<'_> {
    /// Parses whole lines (the block ends with a newline).
    fn parse(&self, data: &[u8]) -> Block {
        let mut block = Block {
            users: Vec::new(),
            pairs: Vec::new(),
            stats: PlayStats::default(),
            lines: 0,
            error: None,
        };
        let mut agg: FxHashMap<u64, (i64, u32)> = FxHashMap::default();
        let mut local: FxHashMap<&[u8], u32> = FxHashMap::default();
        // Onion files are grouped by user: remember the last one to skip most lookups.
        let mut last: Option<(&[u8], u32)> = None;
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', data) {
            let row = strip_eol(&data[start..=end]);
            start = end + 1;
            block.lines += 1;
            if row.is_empty() {
                continue;
            }
            block.stats.rows += 1;
            match self.parse_row(row, &mut block, &mut local, &mut last) {
                Ok(Some((user, track, ts))) => {
                    let e = agg
                        .entry(((user as u64) << 32) | track as u64)
                        .or_insert((ts, 0));
                    e.0 = e.0.min(ts);
                    e.1 += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    block.error = Some((block.lines, e));
                    return block;
                }
            }
        }
        block.pairs = agg
            .into_iter()
            .map(|(k, (ts, c))| ((k >> 32) as u32, k as u32, ts, c))
            .collect();
        block
    }

    /// The row's (local user, track, timestamp), or `None` when the row is skipped.
    fn parse_row<'d>(
        &self,
        row: &'d [u8],
        block: &mut Block,
        local: &mut FxHashMap<&'d [u8], u32>,
        last: &mut Option<(&'d [u8], u32)>,
    ) -> Result<Option<(u32, u32, i64)>, LineError> {
        let mut cols = row.split(|&b| b == b'\t');
        let (Some(u), Some(t), Some(ts), None) =
            (cols.next(), cols.next(), cols.next(), cols.next())
        else {
            return Err(LineError::Columns(row.split(|&b| b == b'\t').count()));
        };
        let ts = parse_timestamp(ts)
            .ok_or_else(|| LineError::Timestamp(String::from_utf8_lossy(ts).into_owned()))?;
        if u.is_empty() || t.is_empty() {
            return Err(LineError::EmptyId);
        }
        if ts < self.keep_from {
            block.stats.before_keep_from += 1;
            return Ok(None);
        }
        let track_str = std::str::from_utf8(t).map_err(|_| LineError::Utf8)?;
        let Some(track) = self.tracks.get(track_str) else {
            return match self.missing {
                MissingTracks::Skip => {
                    block.stats.unknown_track += 1;
                    Ok(None)
                }
                MissingTracks::Fail => Err(LineError::UnknownTrack(track_str.into())),
            };
        };
        let user = match *last {
            Some((bytes, idx)) if bytes == u => idx,
            _ => {
                let idx = match local.get(u) {
                    Some(&idx) => idx,
                    None => {
                        let s = std::str::from_utf8(u).map_err(|_| LineError::Utf8)?;
                        let idx = block.users.len() as u32;
                        block.users.push(s.into());
                        local.insert(u, idx);
                        idx
                    }
                };
                *last = Some((u, idx));
                idx
            }
        };
        Ok(Some((user, track, ts)))
    }
}
