//! The track catalog: `trackid_sorted.csv` (`idx,trackid`), whose row order is the row
//! order of every backend's `.npy` matrix.

use std::fs::File;
use std::path::Path;

use crate::io::{ImportError, LineReader, Vocab};

/// Reads the sorted track id list; `idx` must count 0, 1, 2, … and ids must be unique.
pub fn read_track_ids(path: &Path) -> Result<Vocab, ImportError> {
    let mut lines = LineReader::open(path)?;
    let header = lines.header()?;
    if header.trim() != "idx,trackid" {
        return Err(ImportError::Header {
            path: path.into(),
            expected: "idx,trackid".into(),
            found: header,
        });
    }
    let mut vocab = Vocab::new();
    while let Some((line_no, line)) = lines.next_line()? {
        let row = String::from_utf8_lossy(line).into_owned();
        if row.is_empty() {
            continue;
        }
        let cols: Vec<&str> = row.split(',').collect();
        if cols.len() != 2 {
            return Err(ImportError::Columns {
                path: path.into(),
                line: line_no,
                expected: 2,
                found: cols.len(),
            });
        }
        let expected_idx = vocab.len();
        if cols[0].trim().parse::<usize>().ok() != Some(expected_idx) {
            return Err(ImportError::Line {
                path: path.into(),
                line: line_no,
                detail: format!("idx is `{}`, expected {expected_idx}", cols[0]),
            });
        }
        let id = cols[1].trim();
        if id.is_empty() {
            return Err(ImportError::Line {
                path: path.into(),
                line: line_no,
                detail: "empty track id".into(),
            });
        }
        if vocab.get(id).is_some() {
            return Err(ImportError::DuplicateTrack {
                path: path.into(),
                line: line_no,
                id: id.into(),
            });
        }
        vocab.intern(id);
    }
    Ok(vocab)
}

/// Writes the sorted track id list in the same format.
pub fn write_track_ids(path: &Path, ids: &Vocab) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(File::create(path)?);
    writeln!(w, "idx,trackid")?;
    for (i, id) in ids.ids().enumerate() {
        writeln!(w, "{i},{id}")?;
    }
    w.flush()
}
