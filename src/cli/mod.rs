//! Subcommands. Each file holds one command's arguments and body; shared flags live here.

mod data;
mod demo;
mod embed;
mod evaluate;
mod experiment;
mod import;
mod model;
mod openapi;
mod progress;
mod recommend;
mod report;
mod serve;
mod setup;
mod split;
mod tags;
mod train;
mod train_bert4rec;
mod train_shallow;

use clap::{Parser, Subcommand};

pub use data::DataArgs;

/// Music recommendation from frozen audio embeddings plus listening histories, after
/// Tamm & Aljanaki (RecSys '24).
#[derive(Debug, Parser)]
#[command(name = "audiorec", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read and check a dataset folder (plays TSV, track ids, embeddings) and cache it.
    Import(import::Args),
    /// Make the paper's temporal split, print the Table 2 counts and save it.
    Split(split::Args),
    /// Train a neural recommender and save its best checkpoint.
    ///
    /// On Linux with glibc the command restarts itself once with `GLIBC_TUNABLES` set so
    /// that glibc keeps freed tensor memory instead of page-faulting it back in every step
    /// (set `GLIBC_TUNABLES` yourself to choose otherwise).
    Train(train::Args),
    /// Evaluate a recommender on the validation and test users.
    Evaluate(evaluate::Args),
    /// Run the paper's comparison: every backend under KNN, the Shallow Net and BERT4Rec
    /// (plus Random rows), stored run by run and resumable, then write its report.
    ///
    /// Restarts itself with `GLIBC_TUNABLES` like `train` (it trains).
    Experiment(experiment::Args),
    /// Regenerate an experiment's report (HTML, Markdown, CSV, LaTeX) from the database.
    Report(report::Args),
    /// Write batch recommendations (`user_id, track_id, rank, score`) for many users.
    Recommend(recommend::Args),
    /// Write a seeded synthetic dataset in the Music4All-Onion layout.
    DemoData(demo::Args),
    /// Run the HTTP service (embedded SQLite and demo data unless configured otherwise).
    Serve(serve::Args),
    /// Print the OpenAPI document of the HTTP API.
    Openapi(openapi::Args),
    /// Compute content rows (MusiCNN or MFCC) from audio files.
    Embed(embed::Args),
    /// Print the MSD tags MusiCNN predicts for an audio file.
    Tags(tags::Args),
    /// Fetch pretrained weights (MusiCNN) with pip.
    Setup(setup::Args),
}

impl Cli {
    /// Whether the command trains (and so wants glibc to keep freed memory).
    pub fn trains(&self) -> bool {
        matches!(self.command, Command::Train(_) | Command::Experiment(_))
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Import(a) => import::run(a),
        Command::Split(a) => split::run(a),
        Command::Train(a) => train::run(a),
        Command::Evaluate(a) => evaluate::run(a),
        Command::Experiment(a) => experiment::run(a),
        Command::Report(a) => report::run(a),
        Command::Recommend(a) => recommend::run(a),
        Command::DemoData(a) => demo::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Openapi(a) => openapi::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Tags(a) => tags::run(a),
        Command::Setup(a) => setup::run(a),
    }
}
