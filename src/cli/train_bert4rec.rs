//! `audiorec train bert4rec`: trains on the split's train sequences, early-stops on the
//! validation users, and writes the best checkpoint to the models folder.

use std::path::PathBuf;

use anyhow::{Context, bail};
use audiorec::model::bert4rec::checkpoint::default_name;
use audiorec::model::bert4rec::{Bert4RecConfig, FitConfig, ItemInit, ModelConfig};
use audiorec::model::checkpoint::CheckpointPaths;
use audiorec::model::parse_device;
use audiorec::train::bert4rec::{TrainData, fit};

use super::DataArgs;
use super::progress::Progress;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    /// Embedding backend: the stem of a file in DIR/embeddings/.
    #[arg(long, env = "AUDIOREC_BACKEND")]
    backend: String,
    /// The `random` variant: learn the item table from N(0, 0.02) instead of the backend.
    #[arg(long)]
    random: bool,
    /// Hidden size of the random variant (the content variant uses the embedding size).
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Keep the item table fixed (default: true for content, false for random).
    #[arg(long, action = clap::ArgAction::Set)]
    freeze_items: Option<bool>,
    /// Longest sequence read: the most recent items of each user.
    #[arg(long, default_value_t = 300)]
    max_len: usize,
    #[arg(long, default_value_t = 2)]
    layers: usize,
    #[arg(long, default_value_t = 2)]
    heads: usize,
    #[arg(long, default_value_t = 256)]
    intermediate: usize,
    #[arg(long, default_value_t = 0.1)]
    dropout: f32,
    /// Most epochs to train.
    #[arg(long, default_value_t = FitConfig::default().max_epochs)]
    epochs: usize,
    /// Users per batch.
    #[arg(long, default_value_t = FitConfig::default().batch_size)]
    batch_size: usize,
    #[arg(long, default_value_t = FitConfig::default().lr)]
    lr: f64,
    /// Probability of masking each item of a training sequence.
    #[arg(long, default_value_t = FitConfig::default().mask_prob)]
    mask_prob: f64,
    /// Epochs without improvement before the learning rate is cut.
    #[arg(long, default_value_t = FitConfig::default().plateau_patience)]
    plateau_patience: usize,
    /// Epochs without improvement before training stops.
    #[arg(long, default_value_t = FitConfig::default().early_stopping_patience)]
    patience: usize,
    /// Seed of initialisation, batching, masking and dropout.
    #[arg(long, default_value_t = FitConfig::default().seed)]
    seed: u64,
    /// Stop each epoch after this many batches (quick runs and benchmarks).
    #[arg(long)]
    max_batches: Option<usize>,
    /// Continue the run saved under this checkpoint name (same data and parameters;
    /// --epochs may grow), optimiser state included.
    #[arg(long)]
    resume: bool,
    /// Where to write the checkpoint (default DIR/.audiorec/models).
    #[arg(long, env = "AUDIOREC_MODELS")]
    models: Option<PathBuf>,
    /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu", env = "AUDIOREC_DEVICE")]
    device: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = parse_device(&args.device).map_err(|e| anyhow::anyhow!("--device {e}"))?;
    let (dataset, split) = args.data.open_split()?;
    let embeddings = dataset.load_embeddings(&args.backend)?;
    let init = if args.random {
        ItemInit::Random
    } else {
        ItemInit::Content
    };
    let hidden = match init {
        ItemInit::Content => embeddings.dim,
        ItemInit::Random => args.hidden,
    };
    let model = ModelConfig {
        freeze_items: args.freeze_items.unwrap_or(init == ItemInit::Content),
        max_len: args.max_len,
        layers: args.layers,
        heads: args.heads,
        intermediate: args.intermediate,
        dropout: args.dropout,
        ..ModelConfig::paper(init, dataset.tracks.len(), hidden)
    };
    if init == ItemInit::Random && model.freeze_items {
        bail!("--random with --freeze-items true would never learn the item table");
    }
    let config = Bert4RecConfig {
        model,
        fit: FitConfig {
            max_epochs: args.epochs,
            batch_size: args.batch_size,
            lr: args.lr,
            mask_prob: args.mask_prob,
            plateau_patience: args.plateau_patience,
            early_stopping_patience: args.patience,
            seed: args.seed,
            max_batches: args.max_batches,
            ..FitConfig::default()
        },
    };
    let dir = args
        .models
        .clone()
        .unwrap_or_else(|| dataset.layout.models());
    let name = default_name(init, &args.backend);
    let paths = CheckpointPaths::new(&dir, &name);
    tracing::info!(
        validation_users = split.validation.len(),
        tracks = dataset.tracks.len(),
        hidden,
        device = %args.device,
        "training bert4rec"
    );
    let data = TrainData {
        embeddings: &embeddings,
        split: &split,
    };
    let progress = Progress::new(&name);
    let outcome = fit(&config, data, &paths, args.resume, &device, &progress)
        .context("bert4rec training failed")?;
    progress.finish();
    let c = &outcome.checkpoint;
    match c.best() {
        Some(b) => println!(
            "best epoch {} of {} ({}): validation loss {:.4}, HitRate@50 {}; saved {}",
            b.epoch,
            c.curve.len(),
            c.state.finished.as_deref().unwrap_or("stopped"),
            b.validation_loss,
            b.validation_hit_rate_50
                .map_or("-".into(), |h| format!("{h:.4}")),
            paths.weights().display()
        ),
        None => bail!("no epoch had a finite validation loss; nothing saved"),
    }
    Ok(())
}
