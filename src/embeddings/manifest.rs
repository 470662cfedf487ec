//! Declared backend dimensions: `DIR/embeddings/manifest.json`, shaped
//! `{"<backend>": {"dim": N, "description": "..."}}`.
//!
//! A matrix whose width differs from what its backend is known to produce is almost always
//! the wrong file (another model, a transposed export, a per-chunk matrix), and it would
//! otherwise only surface as poor metrics. A dataset without a manifest is checked against
//! the paper's backends, shipped in this repository's `embeddings/manifest.json` and
//! compiled in; a backend that the manifest in force does not list is not checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::io::ImportError;

/// The manifest's file name inside an embeddings folder.
pub const FILE: &str = "manifest.json";

const BUILTIN: &str = include_str!("../../embeddings/manifest.json");
/// How errors name the compiled-in manifest.
const BUILTIN_NAME: &str = "<built-in embeddings/manifest.json>";

/// What a manifest says about one backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    pub dim: usize,
    #[serde(default)]
    pub description: String,
    /// How the rows were made, when audiorec can make them the same way from audio
    /// (`audiorec-musicnn`, `audiorec-mfcc`): a row computed from an upload joins this
    /// backend only then; otherwise it goes to a backend of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extractor: Option<String>,
}

/// A parsed manifest and where it came from (for error messages).
#[derive(Debug, Clone)]
pub struct Manifest {
    pub path: PathBuf,
    pub backends: BTreeMap<String, BackendInfo>,
}

impl Manifest {
    /// The paper's backends (MFCC 104 … Jukebox 4800).
    pub fn builtin() -> Self {
        Self {
            path: BUILTIN_NAME.into(),
            backends: serde_json::from_str(BUILTIN).expect("the shipped manifest is valid JSON"),
        }
    }

    /// Reads a manifest file; a malformed one is an error naming its line and column.
    pub fn read(path: &Path) -> Result<Self, ImportError> {
        let text = std::fs::read_to_string(path).map_err(ImportError::io(path))?;
        let backends = serde_json::from_str(&text).map_err(|e| ImportError::Manifest {
            path: path.into(),
            detail: format!(
                "line {}, column {}: {e} (expected {{\"<backend>\": {{\"dim\": N, \"description\": \"...\"}}}})",
                e.line(),
                e.column()
            ),
        })?;
        Ok(Self {
            path: path.into(),
            backends,
        })
    }

    /// The manifest in force for an embeddings folder: its own, else the built-in one.
    pub fn for_dir(embeddings_dir: &Path) -> Result<Self, ImportError> {
        let path = embeddings_dir.join(FILE);
        if path.is_file() {
            Self::read(&path)
        } else {
            Ok(Self::builtin())
        }
    }

    /// Checks a backend's matrix width against its declared one, if it has one.
    pub fn check(&self, backend: &str, file: &Path, dim: usize) -> Result<(), ImportError> {
        match self.backends.get(backend) {
            Some(info) if info.dim != dim => Err(ImportError::DeclaredDimension {
                path: file.into(),
                manifest: self.path.clone(),
                backend: backend.into(),
                declared: info.dim,
                found: dim,
            }),
            _ => Ok(()),
        }
    }

    /// Writes `backends` as a manifest file.
    pub fn write(path: &Path, backends: &BTreeMap<String, BackendInfo>) -> std::io::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(backends)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_lists_the_papers_backends() {
        let m = Manifest::builtin();
        let dims: Vec<(&str, usize)> = m
            .backends
            .iter()
            .map(|(k, v)| (k.as_str(), v.dim))
            .collect();
        assert_eq!(
            dims,
            [
                ("encodecmae", 768),
                ("jukebox", 4800),
                ("mert", 1024),
                ("mfcc", 104),
                ("music2vec", 768),
                ("musicfm", 750),
                ("musicnn", 200),
            ]
        );
        assert!(m.backends.values().all(|b| !b.description.is_empty()));
        assert!(m.check("mert", Path::new("x.npy"), 1024).is_ok());
        assert!(m.check("unlisted", Path::new("x.npy"), 3).is_ok());
        let err = m.check("mert", Path::new("x.npy"), 768).unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.npy: dimension 768, but <built-in embeddings/manifest.json> declares 1024 for backend `mert`"
        );
    }
}
