//! Flags shared by every command that reads a dataset folder.

use std::path::PathBuf;

use anyhow::Context;
use audiorec::dataset::split::SplitFile;
use audiorec::dataset::time::parse_date_arg;
use audiorec::dataset::{Dataset, ImportOptions, Layout, MissingTracks, Split, SplitConfig};

#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Dataset folder: userid_trackid_timestamp.tsv, trackid_sorted.csv, embeddings/.
    #[arg(long, env = "AUDIOREC_DATA")]
    pub data: PathBuf,
    /// Plays before this date are dropped (the paper's first split step).
    #[arg(long, default_value = "2019-02-20", value_parser = parse_date_arg)]
    pub keep_from: i64,
    /// What to do with plays whose track has no embedding.
    #[arg(long, value_enum, default_value_t = MissingTracks::Skip)]
    pub missing_tracks: MissingTracks,
}

impl DataArgs {
    pub fn layout(&self) -> Layout {
        Layout::new(&self.data)
    }

    pub fn options(&self) -> ImportOptions {
        ImportOptions {
            keep_from: self.keep_from,
            missing_tracks: self.missing_tracks,
        }
    }

    /// The imported dataset (from the cache when it is fresh).
    pub fn open(&self) -> anyhow::Result<Dataset> {
        Dataset::open(&self.layout(), self.options())
            .with_context(|| format!("could not import the dataset in {}", self.data.display()))
    }

    /// The dataset and the split that `audiorec split` saved (or the paper's default
    /// split, saved now, when there is none).
    pub fn open_split(&self) -> anyhow::Result<(Dataset, Split)> {
        let dataset = self.open()?;
        let path = self.layout().split_file();
        let config = if path.is_file() {
            SplitFile::load(&path)
                .with_context(|| format!("could not read the saved split {}", path.display()))?
                .config
        } else {
            SplitConfig::default()
        };
        let split = Split::new(&dataset.interactions, dataset.tracks.len(), config);
        let file = SplitFile::new(&split, &dataset.interactions.users);
        file.save(&path)
            .with_context(|| format!("could not save the split to {}", path.display()))?;
        Ok((dataset, split))
    }
}
