//! Reading and writing `.npy` float32 matrices (format version 1.0/2.0/3.0, C order).
//!
//! A hand-written reader rather than a generic one because every way a file can be wrong
//! (dtype, order, shape, truncation) must become an error that says exactly that.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::io::ImportError;

/// Reads a little-endian float32 `[rows, cols]` matrix.
pub fn read_f32_matrix(path: &Path) -> Result<(Vec<f32>, usize, usize), ImportError> {
    let err = |detail: String| ImportError::Npy {
        path: path.into(),
        detail,
    };
    let mut file = File::open(path).map_err(ImportError::io(path))?;
    let file_len = file.metadata().map_err(ImportError::io(path))?.len();
    let mut magic = [0u8; 8];
    file.read_exact(&mut magic)
        .map_err(|_| err("too short to be a .npy file".into()))?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err(err("not a .npy file (bad magic)".into()));
    }
    if !(1..=3).contains(&magic[6]) {
        return Err(err(format!("unsupported .npy format version {}", magic[6])));
    }
    let header_len = if magic[6] == 1 {
        let mut b = [0u8; 2];
        file.read_exact(&mut b)
            .map_err(|_| err("truncated header".into()))?;
        u16::from_le_bytes(b) as usize
    } else {
        let mut b = [0u8; 4];
        file.read_exact(&mut b)
            .map_err(|_| err("truncated header".into()))?;
        u32::from_le_bytes(b) as usize
    };
    let mut header = vec![0u8; header_len];
    file.read_exact(&mut header)
        .map_err(|_| err("truncated header".into()))?;
    let header = String::from_utf8_lossy(&header).into_owned();
    let descr = dict_value(&header, "descr")
        .ok_or_else(|| err(format!("header has no descr: {header}")))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    if descr != "<f4" && descr != "=f4" {
        return Err(err(format!(
            "dtype is `{descr}`, expected float32 (`<f4`); convert with arr.astype(np.float32)"
        )));
    }
    if dict_value(&header, "fortran_order").map(str::trim) != Some("False") {
        return Err(err(
            "Fortran-ordered arrays are not supported; save a C-ordered array".into(),
        ));
    }
    let shape = dict_value(&header, "shape").ok_or_else(|| err("header has no shape".into()))?;
    let dims: Vec<usize> = shape
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| err(format!("bad shape {shape}")))
        })
        .collect::<Result<_, _>>()?;
    let [rows, cols] = dims[..] else {
        return Err(err(format!(
            "shape is {shape}, expected a 2-d [n_tracks, dim] matrix"
        )));
    };
    let data_offset = 6 + 2 + if magic[6] == 1 { 2 } else { 4 } + header_len;
    // A corrupt header can claim any shape: overflow is an error, not a panic.
    let expected = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| err(format!("shape {shape} is too large")))? as u64;
    let actual = file_len.saturating_sub(data_offset as u64);
    if actual != expected {
        return Err(err(format!(
            "{} data: shape ({rows}, {cols}) needs {expected} bytes, file holds {actual}",
            if actual < expected {
                "truncated"
            } else {
                "oversized"
            }
        )));
    }
    let mut bytes = vec![0u8; expected as usize];
    file.read_exact(&mut bytes).map_err(ImportError::io(path))?;
    let data = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((data, rows, cols))
}

/// The raw text of `key`'s value in a numpy header dict (`{'descr': '<f4', ...}`).
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find(',').unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

/// Writes a float32 `[rows, cols]` matrix as `.npy` version 1.0.
pub fn write_f32_matrix(
    path: &Path,
    data: &[f32],
    rows: usize,
    cols: usize,
) -> std::io::Result<()> {
    assert_eq!(
        data.len(),
        rows * cols,
        "matrix data does not match its shape"
    );
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Pad so that the data starts on a 64-byte boundary, ending the header with '\n'.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut w = std::io::BufWriter::new(File::create(path)?);
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    for v in data {
        w.write_all(&v.to_le_bytes())?;
    }
    w.flush()
}
