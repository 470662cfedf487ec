//! Frozen content matrices, one per backend (MFCC, MusiCNN, MERT, …), in catalog row order.
//!
//! A backend is a file `DIR/embeddings/<backend>.npy` (aligned with `trackid_sorted.csv`)
//! or `<backend>.tsv` (Onion style). The matrix is never trained; the models read it, and
//! the KNN baseline and the index use its L2-normalised copy.

pub mod manifest;
pub mod npy;
pub mod shuffled;
pub mod tsv;

use std::path::{Path, PathBuf};

use crate::io::{ImportError, Vocab};

/// One backend's frozen item matrix plus its row-normalised copy.
#[derive(Debug, Clone)]
pub struct Embeddings {
    pub backend: String,
    pub dim: usize,
    raw: Vec<f32>,
    normalized: Vec<f32>,
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
        let mut normalized = raw.clone();
        for row in normalized.chunks_exact_mut(dim) {
            l2_normalize(row);
        }
        Ok(Self {
            backend: backend.into(),
            dim,
            raw,
            normalized,
        })
    }

    pub fn len(&self) -> usize {
        self.raw.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub fn row(&self, track: u32) -> &[f32] {
        &self.raw[track as usize * self.dim..(track as usize + 1) * self.dim]
    }

    pub fn normalized_row(&self, track: u32) -> &[f32] {
        &self.normalized[track as usize * self.dim..(track as usize + 1) * self.dim]
    }

    /// The whole raw matrix, row-major.
    pub fn raw(&self) -> &[f32] {
        &self.raw
    }

    /// The whole normalised matrix, row-major.
    pub fn normalized(&self) -> &[f32] {
        &self.normalized
    }

    /// Mean of the raw rows of `tracks`; `None` for an empty list.
    pub fn mean(&self, tracks: &[u32]) -> Option<Vec<f32>> {
        if tracks.is_empty() {
            return None;
        }
        let mut acc = vec![0f32; self.dim];
        for &t in tracks {
            crate::simd::add_assign(&mut acc, self.row(t));
        }
        let n = tracks.len() as f32;
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
