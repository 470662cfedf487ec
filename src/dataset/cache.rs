//! The imported plays, cached as one binary file so that `split`, `evaluate` and the
//! service start in a fraction of a second instead of re-reading the plays TSV.
//!
//! Format: a JSON header line (sources' sizes and mtimes, import options, counts), then
//! the user ids (newline-separated), then the four columns as little-endian arrays.

use crate::io::le;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::{Dataset, ImportOptions, Interactions, Layout, PlayStats, Vocab};

const FILE: &str = "plays.bin";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct Header {
    version: u32,
    sources: Vec<(u64, u64)>,
    options: ImportOptions,
    stats: PlayStats,
    users: usize,
    pairs: usize,
}

/// Size and mtime of the files an import reads, so a changed source invalidates the cache.
fn fingerprint(layout: &Layout) -> Vec<(u64, u64)> {
    [layout.plays(), layout.track_ids()]
        .iter()
        .map(|p| {
            fs::metadata(p).map_or((0, 0), |m| {
                let mtime = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos() as u64);
                (m.len(), mtime)
            })
        })
        .collect()
}

pub fn write(dataset: &Dataset) -> std::io::Result<()> {
    let dir = dataset.layout.derived();
    fs::create_dir_all(&dir)?;
    // A unique temporary name: concurrent writers (tests, two commands) never clobber
    // each other, and the rename makes the new cache appear whole.
    let tmp = dir.join(format!("{FILE}.{}.tmp", uuid::Uuid::new_v4()));
    let it = &dataset.interactions;
    let header = Header {
        version: VERSION,
        sources: fingerprint(&dataset.layout),
        options: dataset.options,
        stats: dataset.stats.clone(),
        users: it.users.len(),
        pairs: it.len(),
    };
    let mut w = BufWriter::new(File::create(&tmp)?);
    serde_json::to_writer(&mut w, &header)?;
    w.write_all(b"\n")?;
    for id in it.users.ids() {
        w.write_all(id.as_bytes())?;
        w.write_all(b"\n")?;
    }
    le::write(&mut w, &it.user)?;
    le::write(&mut w, &it.track)?;
    le::write(&mut w, &it.first_ts)?;
    le::write(&mut w, &it.count)?;
    w.flush()?;
    drop(w);
    fs::rename(tmp, dir.join(FILE))
}

/// The cached dataset, or `None` when it is missing, stale or made with other options.
pub fn read(layout: &Layout, options: ImportOptions) -> Option<Dataset> {
    let path = layout.derived().join(FILE);
    let mut r = BufReader::with_capacity(1 << 20, File::open(&path).ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let header: Header = serde_json::from_str(&line).ok()?;
    if header.version != VERSION
        || header.options != options
        || header.sources != fingerprint(layout)
    {
        return None;
    }
    let tracks = Dataset::read_catalog(layout).ok()?;
    let mut users = Vocab::new();
    for _ in 0..header.users {
        line.clear();
        r.read_line(&mut line).ok()?;
        users.intern(line.trim_end_matches('\n'));
    }
    let n = header.pairs;
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).ok()?;
    if bytes.len() != n * 20 {
        return None;
    }
    let (u, rest) = bytes.split_at(n * 4);
    let (t, rest) = rest.split_at(n * 4);
    let (ts, c) = rest.split_at(n * 8);
    Some(Dataset {
        layout: layout.clone(),
        tracks,
        interactions: Interactions {
            users,
            user: le::decode(u),
            track: le::decode(t),
            first_ts: le::decode(ts),
            count: le::decode(c),
        },
        stats: header.stats,
        options,
    })
}
