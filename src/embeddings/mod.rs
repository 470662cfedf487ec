//! Frozen content matrices, one per backend (MFCC, MusiCNN, MERT, …), in catalog row order.
//!
//! A backend is a file `DIR/embeddings/<backend>.npy` (aligned with `trackid_sorted.csv`)
//! or `<backend>.tsv` (Onion style). The matrix is never trained; the models read it, and
//! the KNN baseline and the index use its rows L2-normalised. Only the raw rows are kept:
//! an index copies the normalised rows it needs when it is built, so a second whole
//! normalised matrix (229 MB for MERT's 1024-d at 56k tracks) would only double memory.

pub mod added;
pub mod manifest;
pub mod npy;
pub mod shuffled;
pub mod tsv;

use std::path::{Path, PathBuf};

use crate::io::{ImportError, Vocab};

/// One backend's frozen item matrix, and the rows of tracks added to the catalogue while
/// it is served (see [`added`]).
#[derive(Debug, Clone)]
pub struct Embeddings {
    pub backend: String,
    pub dim: usize,
    raw: Vec<f32>,
    /// The catalogue index of the first added track: the imported catalogue's size.
    first_added: usize,
    /// Row or none per added track, in catalogue order from `first_added`.
    added: boxcar::Vec<Option<Box<[f32]>>>,
}

impl Embeddings {
    /// Wraps a row-major `[n, dim]` matrix, checking that every value is finite.
    pub fn new(backend: &str, raw: Vec<f32>, dim: usize, path: &Path) -> Result<Self, ImportError> {
        if dim == 0 || !raw.len().is_multiple_of(dim) {
            return Err(ImportError::Npy {
                path: path.into(),
                detail: format!("{} values do not form rows of dimension {dim}", raw.len()),
            });
        }
        if let Some(pos) = raw.iter().position(|v| !v.is_finite()) {
            return Err(ImportError::NonFinite {
                path: path.into(),
                row: (pos / dim) as u64,
                column: pos % dim,
                value: raw[pos],
            });
        }
        Ok(Self::from_parts(backend, dim, raw))
    }

    fn from_parts(backend: &str, dim: usize, raw: Vec<f32>) -> Self {
        Self {
            backend: backend.into(),
            dim,
            first_added: raw.len() / dim,
            raw,
            added: boxcar::Vec::new(),
        }
    }

    /// Rows of the imported matrix (the catalogue it was loaded with); added tracks are
    /// not counted (see [`Embeddings::tracks`]).
    pub fn len(&self) -> usize {
        self.raw.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The raw row of a track; panics for a track without one (see
    /// [`Embeddings::try_row`]).
    pub fn row(&self, track: u32) -> &[f32] {
        match self.base(track) {
            Some(r) => &self.raw[r],
            None => self.added_row(track).expect("a row for the track"),
        }
    }

    /// The L2-normalised row of a track; panics for a track without one.
    pub fn normalized_row(&self, track: u32) -> Vec<f32> {
        self.try_normalized_row(track).expect("a row for the track")
    }

    /// The L2-normalised rows of `tracks`, row-major, in their order (what an index is
    /// built from); panics for a track without a row.
    pub fn normalized_rows(&self, tracks: &[u32]) -> Vec<f32> {
        let mut rows = Vec::with_capacity(tracks.len() * self.dim);
        for &t in tracks {
            let start = rows.len();
            rows.extend_from_slice(self.row(t));
            l2_normalize(&mut rows[start..]);
        }
        rows
    }

    /// Where an imported track's row lies in the matrices.
    fn base(&self, track: u32) -> Option<std::ops::Range<usize>> {
        let t = track as usize;
        (t < self.len()).then(|| t * self.dim..(t + 1) * self.dim)
    }

    /// The whole raw matrix, row-major.
    pub fn raw(&self) -> &[f32] {
        &self.raw
    }

    /// Mean of the raw rows of those `tracks` that have one here (an added track may
    /// have rows in other backends only); `None` when none has.
    pub fn mean(&self, tracks: &[u32]) -> Option<Vec<f32>> {
        let mut acc = vec![0f32; self.dim];
        let mut n = 0usize;
        for row in tracks.iter().filter_map(|&t| self.try_row(t)) {
            crate::simd::add_assign(&mut acc, row);
            n += 1;
        }
        if n == 0 {
            return None;
        }
        let n = n as f32;
        acc.iter_mut().for_each(|a| *a /= n);
        Some(acc)
    }
}

/// Scales `v` to unit length in place; a zero vector stays zero.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Where a backend's file is: `.npy` preferred over `.tsv`.
pub fn backend_file(embeddings_dir: &Path, backend: &str) -> Option<PathBuf> {
    ["npy", "tsv"]
        .iter()
        .map(|ext| embeddings_dir.join(format!("{backend}.{ext}")))
        .find(|p| p.is_file())
}

/// Names of the backends in a folder (file stems of `.npy`/`.tsv`), sorted.
pub fn list_backends(embeddings_dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(embeddings_dir)? {
        let path = entry?.path();
        let ext = path.extension().and_then(|e| e.to_str());
        if matches!(ext, Some("npy" | "tsv"))
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            names.push(stem.to_string());
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Loads one backend's file, aligned with `catalog`, and checks its width against the
/// manifest in force for its folder. `ids_path` names the id list in errors about row
/// counts.
pub fn load(
    path: &Path,
    backend: &str,
    catalog: &Vocab,
    ids_path: &Path,
) -> Result<Embeddings, ImportError> {
    let (raw, dim) = if path.extension().and_then(|e| e.to_str()) == Some("npy") {
        let (raw, rows, dim) = npy::read_f32_matrix(path)?;
        if rows != catalog.len() {
            return Err(ImportError::RowCount {
                path: path.into(),
                rows,
                ids_path: ids_path.into(),
                ids: catalog.len(),
            });
        }
        (raw, dim)
    } else {
        let (raw, dim, _) = tsv::read_tsv_matrix(path, Some(catalog))?;
        (raw, dim)
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    manifest::Manifest::for_dir(dir)?.check(backend, path, dim)?;
    Embeddings::new(backend, raw, dim, path)
}
