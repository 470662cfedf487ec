//! `audiorec train <model>`: one nested subcommand per trainable model.

use clap::Subcommand;

use super::{train_bert4rec, train_shallow};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    model: TrainModel,
}

#[derive(Debug, Subcommand)]
enum TrainModel {
    /// The Shallow Net: a learned tower over frozen content, hinge loss on negative users.
    Shallow(train_shallow::Args),
    /// BERT4Rec: masked-item training over the backend's frozen embeddings.
    Bert4rec(train_bert4rec::Args),
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.model {
        TrainModel::Shallow(a) => train_shallow::run(a),
        TrainModel::Bert4rec(a) => train_bert4rec::run(a),
    }
}
