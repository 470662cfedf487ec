//! The ground floor: readers every layer above shares — text lines with their numbers,
//! little-endian binary with bounds checked before allocating, string ids to dense
//! indices, and the error type that names the file, line and column of what went wrong. Nothing here knows what a play, a track or an embedding is.

pub mod error;
pub mod fnv;
pub mod le;
pub mod lines;
pub mod vocab;

pub use error::ImportError;
pub use lines::{LineReader, strip_eol};
pub use vocab::Vocab;
