use std::path::PathBuf;

/// Why a dataset could not be imported. Every variant names the file and, where there is
/// one, the line (1-based, header included) or row, so a person can go and fix it.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: missing (expected {what})")]
    Missing { path: PathBuf, what: &'static str },
    #[error("{path}: line 1: header is `{found}`, expected `{expected}`")]
    Header {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{path}: line {line}: expected {expected} columns, found {found}")]
    Columns {
        path: PathBuf,
        line: u64,
        expected: usize,
        found: usize,
    },
    #[error("{path}: line {line}: cannot parse timestamp `{value}`")]
    Timestamp {
        path: PathBuf,
        line: u64,
        value: String,
    },
    #[error("{path}: line {line}: {detail}")]
    Line {
        path: PathBuf,
        line: u64,
        detail: String,
    },
    #[error(
        "{path}: line {line}: track `{track}` has no embedding (pass --missing-tracks skip to skip such plays)"
    )]
    UnknownTrack {
        path: PathBuf,
        line: u64,
        track: String,
    },
    #[error("{path}: line {line}: duplicate track id `{id}`")]
    DuplicateTrack {
        path: PathBuf,
        line: u64,
        id: String,
    },
    /// In a `.npy` file `row` and `column` are 0-based matrix indices (as numpy indexes
    /// them); in a TSV file they are the 1-based line and field of the text.
    #[error(
        "{path}: row {row}, column {column}: value is {value} (NaN and infinity are not embeddings)"
    )]
    NonFinite {
        path: PathBuf,
        row: u64,
        column: usize,
        value: f32,
    },
    /// A TSV row (`row` is its 1-based line) narrower or wider than the header.
    #[error("{path}: row {row}: dimension {found}, expected {expected}")]
    Dimension {
        path: PathBuf,
        row: u64,
        expected: usize,
        found: usize,
    },
    #[error("{path}: {detail}")]
    Npy { path: PathBuf, detail: String },
    #[error(
        "{path}: dimension {found}, but {manifest} declares {declared} for backend `{backend}`"
    )]
    DeclaredDimension {
        path: PathBuf,
        manifest: PathBuf,
        backend: String,
        declared: usize,
        found: usize,
    },
    #[error("{path}: {detail}")]
    Manifest { path: PathBuf, detail: String },
    #[error("{path}: {rows} rows but the track id list {ids_path} has {ids}")]
    RowCount {
        path: PathBuf,
        rows: usize,
        ids_path: PathBuf,
        ids: usize,
    },
    #[error("{path}: no plays left (after keeping plays from {keep_from})")]
    Empty { path: PathBuf, keep_from: String },
}

impl ImportError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
