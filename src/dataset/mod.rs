//! Datasets on disk: the catalog (track ids <-> dense rows), aggregated plays, the paper's
//! split, and synthetic demo data in the same layout.
//!
//! Layout of a dataset folder (Music4All-Onion style):
//! ```text
//! DIR/userid_trackid_timestamp.tsv   plays, tab-separated, header user_id track_id timestamp
//! DIR/trackid_sorted.csv             idx,trackid — row i of every .npy is track i
//! DIR/embeddings/<backend>.npy|.tsv  one frozen matrix per backend
//! DIR/.audiorec/                     what audiorec derives: imported plays, the split
//! ```

pub mod cache;
pub mod catalog;
pub mod demo;
pub mod plays;
pub mod split;
pub mod time;

use std::path::PathBuf;

pub use crate::io::{ImportError, Vocab};
pub use plays::{Interactions, MissingTracks, PlayStats};
pub use split::{Split, SplitConfig, SplitCounts};

use crate::embeddings::{self, Embeddings};

pub const PLAYS_FILE: &str = "userid_trackid_timestamp.tsv";
pub const TRACK_IDS_FILE: &str = "trackid_sorted.csv";
pub const EMBEDDINGS_DIR: &str = "embeddings";
pub const DERIVED_DIR: &str = ".audiorec";

/// Paths of a dataset folder.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn plays(&self) -> PathBuf {
        self.root.join(PLAYS_FILE)
    }
    pub fn track_ids(&self) -> PathBuf {
        self.root.join(TRACK_IDS_FILE)
    }
    pub fn embeddings_dir(&self) -> PathBuf {
        self.root.join(EMBEDDINGS_DIR)
    }
    pub fn derived(&self) -> PathBuf {
        self.root.join(DERIVED_DIR)
    }
    pub fn split_file(&self) -> PathBuf {
        self.derived().join("split.json")
    }
    /// Where trained model checkpoints go by default.
    pub fn models(&self) -> PathBuf {
        self.derived().join("models")
    }
    pub fn backends(&self) -> Result<Vec<String>, ImportError> {
        let dir = self.embeddings_dir();
        let names = embeddings::list_backends(&dir).map_err(ImportError::io(&dir))?;
        if names.is_empty() {
            return Err(ImportError::Missing {
                path: dir,
                what: "at least one <backend>.npy or <backend>.tsv",
            });
        }
        Ok(names)
    }
}

/// Options of an import.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ImportOptions {
    /// Plays before this Unix time are dropped (the paper keeps 2019-02-20 onwards).
    pub keep_from: i64,
    pub missing_tracks: MissingTracks,
}

/// An imported dataset: the catalog and the aggregated plays.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub layout: Layout,
    pub tracks: Vocab,
    pub interactions: Interactions,
    pub stats: PlayStats,
    pub options: ImportOptions,
}

impl Dataset {
    /// Reads the catalog: `trackid_sorted.csv`, or, when there is none, the sorted ids of
    /// the first TSV backend.
    pub fn read_catalog(layout: &Layout) -> Result<Vocab, ImportError> {
        let ids = layout.track_ids();
        if ids.is_file() {
            return catalog::read_track_ids(&ids);
        }
        let first_tsv = layout
            .backends()?
            .into_iter()
            .filter_map(|b| embeddings::backend_file(&layout.embeddings_dir(), &b))
            .find(|p| p.extension().and_then(|e| e.to_str()) == Some("tsv"));
        match first_tsv {
            Some(path) => Ok(embeddings::tsv::read_tsv_matrix(&path, None)?
                .2
                .expect("a TSV read without a catalog returns one")),
            None => Err(ImportError::Missing {
                path: ids,
                what: "the track id list `idx,trackid` that .npy rows follow",
            }),
        }
    }

    /// Imports from the raw files, checking every backend, and caches the result under
    /// `DIR/.audiorec/` for later commands.
    pub fn import(
        layout: &Layout,
        options: ImportOptions,
        progress: &dyn Fn(u64),
    ) -> Result<Self, ImportError> {
        let tracks = Self::read_catalog(layout)?;
        for backend in layout.backends()? {
            Self::load_embeddings_with(layout, &tracks, &backend)?;
        }
        let plays = layout.plays();
        if !plays.is_file() {
            return Err(ImportError::Missing {
                path: plays,
                what: "plays user_id\\ttrack_id\\ttimestamp",
            });
        }
        let (interactions, stats) = plays::read_plays(
            &plays,
            &tracks,
            options.keep_from,
            options.missing_tracks,
            progress,
        )?;
        let dataset = Self {
            layout: layout.clone(),
            tracks,
            interactions,
            stats,
            options,
        };
        cache::write(&dataset).map_err(ImportError::io(layout.derived()))?;
        Ok(dataset)
    }

    /// The cached import if it is fresh and was made with `options`, else a new import.
    pub fn open(layout: &Layout, options: ImportOptions) -> Result<Self, ImportError> {
        if let Some(dataset) = cache::read(layout, options) {
            return Ok(dataset);
        }
        tracing::info!(dir = %layout.root.display(), "importing dataset (no fresh cache)");
        Self::import(layout, options, &|_| {})
    }

    /// The split `audiorec split` saved for this folder, if any.
    pub fn saved_split(layout: &Layout) -> Result<Option<SplitConfig>, ImportError> {
        let path = layout.split_file();
        if !path.is_file() {
            return Ok(None);
        }
        let file = split::SplitFile::load(&path).map_err(ImportError::io(&path))?;
        Ok(Some(file.config))
    }

    /// The dataset with the split every command shares: the one `audiorec split` saved
    /// (plays from its first kept day, unless `keep_from` says otherwise), else the
    /// paper's, saved now so that later commands reuse it.
    pub fn open_split(
        layout: &Layout,
        keep_from: Option<i64>,
        missing_tracks: MissingTracks,
    ) -> Result<(Self, Split), ImportError> {
        let saved = Self::saved_split(layout)?;
        let keep_from = keep_from
            .or(saved.map(|c| c.keep_from))
            .unwrap_or_else(split::paper_keep_from);
        let options = ImportOptions {
            keep_from,
            missing_tracks,
        };
        let dataset = Self::open(layout, options)?;
        let config = SplitConfig {
            keep_from,
            ..saved.unwrap_or_default()
        };
        let split = Split::new(&dataset.interactions, dataset.tracks.len(), config);
        let path = layout.split_file();
        split::SplitFile::new(&split, &dataset.interactions.users)
            .save(&path)
            .map_err(ImportError::io(&path))?;
        Ok((dataset, split))
    }

    /// Loads one backend, aligned with this catalog. A name `<backend>-shuffled[-SEED]`
    /// with no file of its own is the shuffled-embedding control of `<backend>` (see
    /// [`embeddings::shuffled`]).
    pub fn load_embeddings(&self, backend: &str) -> Result<Embeddings, ImportError> {
        let own_file = embeddings::backend_file(&self.layout.embeddings_dir(), backend);
        match embeddings::shuffled::parse(backend) {
            Some((base, seed)) if own_file.is_none() => {
                Ok(Self::load_embeddings_with(&self.layout, &self.tracks, base)?.shuffled(seed))
            }
            _ => Self::load_embeddings_with(&self.layout, &self.tracks, backend),
        }
    }

    fn load_embeddings_with(
        layout: &Layout,
        tracks: &Vocab,
        backend: &str,
    ) -> Result<Embeddings, ImportError> {
        let dir = layout.embeddings_dir();
        let path = embeddings::backend_file(&dir, backend).ok_or_else(|| ImportError::Missing {
            path: dir.join(format!("{backend}.npy")),
            what: "the backend's .npy or .tsv matrix",
        })?;
        embeddings::load(&path, backend, tracks, &layout.track_ids())
    }
}
