//! The `audiorec` command line: import data, split it, train, evaluate, run recommenders
//! and the service.

mod cli;
mod process;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = cli::Cli::parse();
    if args.trains() {
        process::keep_freed_memory();
    }
    process::init_tracing();
    cli::run(args)
}
