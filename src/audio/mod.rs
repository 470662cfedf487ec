//! From an audio file to the inputs of the content backends: decoding (wav, flac, mp3,
//! ogg/vorbis with symphonia), mixing to mono, resampling (rubato), musicnn's log-mel and
//! the MFCC baseline.

pub mod decode;
pub mod mel;
pub mod mfcc;
pub mod resample;

use std::path::{Path, PathBuf};

pub use decode::{Decoded, decode_bytes};

/// MusiCNN's sample rate.
pub const MUSICNN_SAMPLE_RATE: u32 = 16_000;

/// Why audio could not be turned into samples. Every variant is the input's fault except
/// `Io` on a server's own files, so an upload failing with any of them is a 422.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unsupported audio format or codec: {0}")]
    Unsupported(String),
    #[error("corrupt audio: {0}")]
    Corrupt(String),
    #[error("the audio holds no samples")]
    Empty,
    #[error("{samples} samples are too short: at least {needed} needed")]
    TooShort { samples: usize, needed: usize },
    #[error("cannot resample from {from} Hz to {to} Hz: {detail}")]
    Resample { from: u32, to: u32, detail: String },
}

/// Decodes a file to mono float samples at `rate` Hz.
pub fn decode_file_at(path: &Path, rate: u32) -> Result<Vec<f32>, AudioError> {
    let decoded = decode::decode_file(path)?;
    resample::resample(&decoded.samples, decoded.sample_rate, rate)
}

/// Decodes audio held in memory (an upload; `hint` is a file extension) to mono float
/// samples at `rate` Hz.
pub fn decode_bytes_at(
    bytes: &[u8],
    hint: Option<&str>,
    rate: u32,
) -> Result<Vec<f32>, AudioError> {
    let decoded = decode_bytes(bytes, hint)?;
    resample::resample(&decoded.samples, decoded.sample_rate, rate)
}

/// Decodes a file to mono float samples at 16 kHz, MusiCNN's input.
pub fn decode_file(path: &Path) -> Result<Vec<f32>, AudioError> {
    decode_file_at(path, MUSICNN_SAMPLE_RATE)
}
