//! Why MSD_musicnn's TensorFlow checkpoint could not be read: shared by the SSTable index
//! reader and the tensor-bundle reader above it.

use std::path::PathBuf;

/// Why a checkpoint could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("malformed checkpoint index: {0}")]
    Format(String),
    #[error("unsupported checkpoint: {0}")]
    Unsupported(String),
    #[error("checkpoint has no tensor {0:?}")]
    Missing(String),
    #[error("tensor {name:?}: {detail}")]
    Tensor { name: String, detail: String },
}
