//! `audiorec train bert4rec`: trains on the split's train sequences, early-stops on the
//! validation users, and writes the best checkpoint to the models folder.

use std::path::PathBuf;

use anyhow::{Context, bail};
use audiorec::train::bert4rec::checkpoint::DataFingerprint;
use audiorec::train::bert4rec::fit::TrainData;
use audiorec::train::bert4rec::{
    Checkpoint, CheckpointPaths, Encoder, FitConfig, ItemInit, ModelConfig, fit,
};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::DataArgs;

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
    /// Where to write the checkpoint (default DIR/.audiorec/models).
    #[arg(long, env = "AUDIOREC_MODELS")]
    models: Option<PathBuf>,
    /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu", env = "AUDIOREC_DEVICE")]
    device: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device =
        audiorec::train::parse_device(&args.device).map_err(|e| anyhow::anyhow!("--device {e}"))?;
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
    let fit_config = FitConfig {
        max_epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        mask_prob: args.mask_prob,
        plateau_patience: args.plateau_patience,
        early_stopping_patience: args.patience,
        seed: args.seed,
        max_batches: args.max_batches,
        ..FitConfig::default()
    };
    let varmap = VarMap::new();
    let encoder = Encoder::new(
        &model,
        Some(embeddings.raw()),
        &varmap,
        &mut StdRng::seed_from_u64(args.seed),
        &device,
    )?;
    let dir = args
        .models
        .clone()
        .unwrap_or_else(|| dataset.layout.models());
    let paths = CheckpointPaths::new(&dir, &CheckpointPaths::default_name(init, &args.backend));
    let meta = Checkpoint {
        backend: args.backend.clone(),
        model,
        fit: fit_config.clone(),
        data: DataFingerprint::new(&split, dataset.tracks.len()),
        curve: Vec::new(),
        best_epoch: None,
    };
    let data = TrainData::from_split(&split);
    tracing::info!(
        users = data.sequences.len(),
        validation_users = data.validation.len(),
        tracks = dataset.tracks.len(),
        hidden,
        device = %args.device,
        "training bert4rec"
    );
    let report = fit(&encoder, &varmap, &data, &fit_config, meta, &paths)
        .context("bert4rec training failed")?;
    let c = &report.checkpoint;
    let best = c.best_epoch.and_then(|e| c.curve.get(e - 1));
    match best {
        Some(b) => println!(
            "best epoch {} of {} ({}): validation loss {:.4}, HitRate@50 {:.4}; saved {}",
            b.epoch,
            c.curve.len(),
            if report.stopped_early {
                "stopped early"
            } else {
                "ran to the limit"
            },
            b.validation_loss,
            b.validation_hit_rate_50,
            paths.weights.display()
        ),
        None => bail!("no epoch had a finite validation loss; nothing saved"),
    }
    Ok(())
}
