//! Flags shared by every command that reads a dataset folder.

use std::path::PathBuf;

use anyhow::Context;
use audiorec::dataset::split::paper_keep_from;
use audiorec::dataset::time::parse_date_arg;
use audiorec::dataset::{Dataset, ImportOptions, Layout, MissingTracks, Split, SplitConfig};

#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Dataset folder: userid_trackid_timestamp.tsv, trackid_sorted.csv, embeddings/.
    #[arg(long, env = "AUDIOREC_DATA")]
    pub data: PathBuf,
    /// Plays before this date are dropped (the paper's first split step). Default: the
    /// date of the split saved by `audiorec split`, else 2019-02-20.
    #[arg(long, value_parser = parse_date_arg)]
    pub keep_from: Option<i64>,
    /// What to do with plays whose track has no embedding.
    #[arg(long, value_enum, default_value_t = MissingTracks::Skip)]
    pub missing_tracks: MissingTracks,
}

impl DataArgs {
    pub fn layout(&self) -> Layout {
        Layout::new(&self.data)
    }

    /// The split `audiorec split` saved, if any.
    pub fn saved_split(&self) -> anyhow::Result<Option<SplitConfig>> {
        Dataset::saved_split(&self.layout()).context("could not read the saved split")
    }

    /// The first kept day: the flag, else the saved split's, else the paper's.
    pub fn keep_from(&self) -> anyhow::Result<i64> {
        Ok(match self.keep_from {
            Some(t) => t,
            None => self
                .saved_split()?
                .map_or_else(paper_keep_from, |c| c.keep_from),
        })
    }

    pub fn options(&self) -> anyhow::Result<ImportOptions> {
        Ok(ImportOptions {
            keep_from: self.keep_from()?,
            missing_tracks: self.missing_tracks,
        })
    }

    /// The imported dataset (from the cache when it is fresh).
    pub fn open(&self) -> anyhow::Result<Dataset> {
        Dataset::open(&self.layout(), self.options()?)
            .with_context(|| format!("could not import the dataset in {}", self.data.display()))
    }

    /// The dataset and the split that `audiorec split` saved (or the paper's default
    /// split, saved now, when there is none).
    pub fn open_split(&self) -> anyhow::Result<(Dataset, Split)> {
        Dataset::open_split(&self.layout(), self.keep_from, self.missing_tracks)
            .with_context(|| format!("could not open the dataset in {}", self.data.display()))
    }
}
