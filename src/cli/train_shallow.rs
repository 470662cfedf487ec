//! `audiorec train shallow`: flags, a progress bar, and the call into the training loop.

use std::path::PathBuf;

use anyhow::Context;
use audiorec::model::checkpoint::CheckpointPaths;
use audiorec::model::parse_device;
use audiorec::model::shallow::{Init, NegativeSampling, ShallowParams};
use audiorec::train::shallow::{TrainData, fit};

use super::DataArgs;
use super::progress::Progress;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    /// Embedding backend: the stem of a file in DIR/embeddings/.
    #[arg(long, env = "AUDIOREC_BACKEND")]
    backend: String,
    /// Where checkpoints go (default DIR/.audiorec/models).
    #[arg(long, env = "AUDIOREC_MODELS")]
    models: Option<PathBuf>,
    /// Checkpoint name (default shallow-<backend>, or shallow-random-<backend>).
    #[arg(long)]
    name: Option<String>,
    /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu", env = "AUDIOREC_DEVICE")]
    device: String,
    /// content: the paper's model; random: both tables learned from random init.
    #[arg(long, value_enum, default_value_t = Init::Content)]
    init: Init,
    /// Tower output size (default: the backend's dimension).
    #[arg(long)]
    d_out: Option<usize>,
    /// Keep the item table fixed (the paper's text). Ignored by --init random.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    freeze_items: bool,
    /// Keep the user table fixed (the paper's text: no).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    freeze_users: bool,
    #[arg(long, default_value_t = 0.2)]
    margin: f64,
    /// Negative users per positive pair.
    #[arg(long, default_value_t = 20)]
    negatives: usize,
    /// non-interacting: users who did not play the track (the paper's text); uniform:
    /// any user, the positive included (the authors' published code).
    #[arg(long, value_enum, default_value_t = NegativeSampling::NonInteracting)]
    negative_sampling: NegativeSampling,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Positive (user, track) pairs per batch.
    #[arg(long, default_value_t = 10_000)]
    batch_size: usize,
    /// At most this many epochs.
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    /// ReduceLROnPlateau: factor, patience (epochs) and floor of the learning rate.
    #[arg(long, default_value_t = 0.1)]
    plateau_factor: f64,
    #[arg(long, default_value_t = 5)]
    plateau_patience: usize,
    #[arg(long, default_value_t = 0.0)]
    min_lr: f64,
    /// Early stopping: epochs without a better validation loss.
    #[arg(long, default_value_t = 16)]
    patience: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue the run saved under this checkpoint name (same data and parameters;
    /// --epochs may grow).
    #[arg(long)]
    resume: bool,
}

impl Args {
    fn params(&self) -> ShallowParams {
        ShallowParams {
            init: self.init,
            d_out: self.d_out,
            freeze_items: self.freeze_items,
            freeze_users: self.freeze_users,
            margin: self.margin,
            negatives: self.negatives,
            negative_sampling: self.negative_sampling,
            lr: self.lr,
            batch_size: self.batch_size,
            max_epochs: self.epochs,
            plateau_factor: self.plateau_factor,
            plateau_patience: self.plateau_patience,
            min_lr: self.min_lr,
            early_stopping_patience: self.patience,
            seed: self.seed,
            ..ShallowParams::new(&self.backend)
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = parse_device(&args.device).map_err(anyhow::Error::msg)?;
    let (dataset, split) = args.data.open_split()?;
    let embeddings = dataset.load_embeddings(&args.backend)?;
    let params = args.params();
    let dir = args
        .models
        .clone()
        .unwrap_or_else(|| args.data.layout().models());
    let name = args.name.clone().unwrap_or_else(|| params.default_name());
    let paths = CheckpointPaths::new(dir, &name);
    tracing::info!(backend = %args.backend, dim = embeddings.dim, users = split.counts.train.users, pairs = split.counts.train.interactions, device = ?device, checkpoint = %paths.config().display(), "training shallow net");
    let progress = Progress::new(&name);
    let data = TrainData {
        embeddings: &embeddings,
        split: &split,
        users: &dataset.interactions.users,
    };
    let outcome = fit(&params, data, &paths, args.resume, &device, &progress)
        .with_context(|| format!("training the shallow net into {}", paths.config().display()))?;
    progress.finish();
    let c = &outcome.checkpoint;
    println!(
        "{} after {} epochs; best epoch {} (validation loss {}); checkpoint {}",
        c.state.finished.as_deref().unwrap_or("stopped"),
        c.state.epochs_done,
        c.best_epoch
            .map_or("0 (untrained)".into(), |e| e.to_string()),
        c.best_validation_loss
            .map_or("-".into(), |l| format!("{l:.5}")),
        paths.weights().display()
    );
    Ok(())
}
