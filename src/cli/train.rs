//! `audiorec train <model>`: one subcommand per trainable model.

use super::train_bert4rec;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    model: TrainModel,
}

#[derive(Debug, clap::Subcommand)]
enum TrainModel {
    /// BERT4Rec: masked-item training over the backend's frozen embeddings.
    Bert4rec(train_bert4rec::Args),
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.model {
        TrainModel::Bert4rec(a) => train_bert4rec::run(a),
    }
}
