//! The `audiorec` command line: import data, split it, evaluate and run recommenders.

mod cli;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = cli::Cli::parse();
    cli::init_tracing();
    cli::run(args)
}
