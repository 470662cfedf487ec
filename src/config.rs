//! Service settings, from flags and `AUDIOREC_*` environment variables (and
//! `DATABASE_URL`). Each field's doc comment is its `--help` text.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::dataset::demo::Scale;
use crate::index::{HnswParams, IndexKind};

/// A secret that never shows up in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("the API key must not be empty".into());
        }
        Ok(Secret(s.to_string()))
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "AUDIOREC_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Database: `postgres://user@host/db` or `sqlite://path` (created if missing).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://audiorec-data/audiorec.db"
    )]
    pub database_url: String,
    /// Dataset folder with the catalog and embeddings (Music4All-Onion layout). If it does
    /// not exist, demo data is generated there.
    #[arg(long, env = "AUDIOREC_DATA", default_value = "audiorec-data/demo")]
    pub data: PathBuf,
    /// Size of the demo data generated when the dataset folder does not exist.
    #[arg(long, env = "AUDIOREC_DEMO_SCALE", value_enum, default_value_t = Scale::Small)]
    pub demo_scale: Scale,
    /// Backends to serve (comma-separated); all in the dataset when empty.
    #[arg(long, env = "AUDIOREC_BACKENDS", value_delimiter = ',')]
    pub backends: Vec<String>,
    /// Folder of trained model checkpoints; `<data>/.audiorec/models` when unset.
    #[arg(long, env = "AUDIOREC_MODELS")]
    pub models: Option<PathBuf>,
    /// Bearer key required on write endpoints; reads stay open. Unset: no auth.
    #[arg(long, env = "AUDIOREC_API_KEY", hide_env_values = true)]
    pub api_key: Option<Secret>,
    /// Origins allowed by CORS (comma-separated, `*` for any); none when empty.
    #[arg(long, env = "AUDIOREC_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Seconds a request may take before it is answered 503.
    #[arg(long, env = "AUDIOREC_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout: u64,
    /// Largest accepted request body in bytes.
    #[arg(long, env = "AUDIOREC_BODY_LIMIT", default_value_t = 16 * 1024 * 1024)]
    pub body_limit: usize,
    /// Milliseconds between two looks at the catalogue's change log for tracks added or
    /// withdrawn through another replica (this one applies its own at once).
    #[arg(long, env = "AUDIOREC_CATALOGUE_POLL_MS", default_value_t = 1000)]
    pub catalogue_poll_ms: u64,
    /// Evaluations with more users than this run in the background (202 + status URL).
    #[arg(long, env = "AUDIOREC_SYNC_EVAL_USERS", default_value_t = 200)]
    pub sync_eval_users: usize,
    /// Nearest-neighbour index for serving: `auto` (default) takes the exact scan where
    /// HNSW of the same recall would not be clearly cheaper (small catalogues, rows with
    /// no low-dimensional structure) and logs why.
    #[arg(long, env = "AUDIOREC_INDEX", value_enum, default_value_t = IndexKind::Auto)]
    pub index: IndexKind,
    /// Device for the neural models: cpu, cuda or cuda:N (CUDA needs `--features cuda`).
    #[arg(long, env = "AUDIOREC_DEVICE", default_value = "cpu")]
    pub device: String,
    /// HNSW candidate list size while searching.
    #[arg(long, env = "AUDIOREC_EF_SEARCH", default_value_t = HnswParams::default().ef_search)]
    pub ef_search: usize,
    /// Search embeddings wider than this in a reduced space of at most this many
    /// principal directions (up to their spectrum's knee), re-ranking the candidates
    /// exactly (0: always at full width).
    #[arg(long, env = "AUDIOREC_SEARCH_DIM", default_value_t = HnswParams::default().search_dim)]
    pub search_dim: usize,
    /// Stored users whose KNN user vector is kept between requests, per backend (0: off).
    /// Checked against the user's history, so a new listen is never answered stale;
    /// memory is at most this × the embedding width × 4 bytes per backend. On the embedded
    /// SQLite the same number of users' histories are kept too, within this × 1,200 bytes
    /// (24 MB at the default). Both evict the least recently used user first.
    #[arg(long, env = "AUDIOREC_REMEMBERED_USERS", default_value_t = 20_000)]
    pub remembered_users: usize,
    /// Seconds without a heartbeat after which a running job (a large evaluation) is
    /// taken to have lost its process and is claimed again by any replica.
    #[arg(long, env = "AUDIOREC_JOB_STALE_AFTER", default_value_t = 30)]
    pub job_stale_after: u64,
    /// On demo data (a folder written by `audiorec demo-data` or by `serve` itself) with
    /// no finished checkpoint of theirs, train a short Shallow Net and BERT4Rec on the
    /// `musicnn` backend in the background once listening (a few minutes on 2 cores on
    /// `small` data), each served as soon as it is trained and saved to the models folder,
    /// so the next start loads it. `false` turns this off.
    #[arg(long, env = "AUDIOREC_DEMO_TRAINING", default_value_t = true, action = clap::ArgAction::Set)]
    pub demo_training: bool,
    /// Most epochs of each demo model (early stopping may end it sooner); default 8 for
    /// the Shallow Net and 4 for BERT4Rec.
    #[arg(long, env = "AUDIOREC_DEMO_EPOCHS", value_parser = clap::value_parser!(u32).range(1..))]
    pub demo_epochs: Option<u32>,
    /// On shutdown, seconds a running job may take to finish before it is handed back to
    /// the queue for another process (the shutdown takes at most this plus a second).
    #[arg(long, env = "AUDIOREC_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,
    /// Most seconds of computing that one `POST /v1/experiments` may ask for, by its
    /// plan's estimate (what `audiorec experiment --dry-run` prints); a larger grid is
    /// answered 422 and belongs on the command line. 0 refuses every experiment.
    #[arg(long, env = "AUDIOREC_EXPERIMENT_BUDGET", default_value_t = 3600)]
    pub experiment_budget: u64,
}

impl Settings {
    /// What a plain `audiorec serve` runs with: each flag's default, or its variable
    /// where set. A base for programs that start the service with a few fields changed
    /// (the benches).
    pub fn from_env() -> Self {
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            settings: Settings,
        }
        <Serve as clap::Parser>::parse_from(["audiorec"]).settings
    }

    pub fn hnsw(&self) -> HnswParams {
        HnswParams {
            ef_search: self.ef_search,
            search_dim: self.search_dim,
            ..HnswParams::default()
        }
    }

    pub fn models_dir(&self) -> PathBuf {
        self.models
            .clone()
            .unwrap_or_else(|| crate::dataset::Layout::new(&self.data).models())
    }
}
