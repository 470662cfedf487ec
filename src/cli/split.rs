use anyhow::Context;
use audiorec::dataset::split::SplitFile;
use audiorec::dataset::time::{format_timestamp, parse_date_arg};
use audiorec::dataset::{Split, SplitConfig};

use super::DataArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    /// First listens at or after this date are held out.
    #[arg(long, default_value = "2020-02-20", value_parser = parse_date_arg)]
    test_from: i64,
    /// Fraction of held-out users that go to validation (the rest go to test).
    #[arg(long, default_value_t = 0.5)]
    validation_ratio: f64,
    /// Seed of the validation/test user shuffle and of the cold-track draw.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Cold start: this fraction of the tracks in the kept plays is held out of training
    /// altogether (their held-out plays stay in validation/test); they stay
    /// recommendable from their content and are evaluated apart. 0 = the paper's split.
    #[arg(long, default_value_t = 0.0)]
    cold_items: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.validation_ratio),
        "--validation-ratio must be between 0 and 1"
    );
    anyhow::ensure!(
        (0.0..1.0).contains(&args.cold_items),
        "--cold-items must be at least 0 and below 1 (a fraction of the tracks)"
    );
    let dataset = args.data.open()?;
    let config = SplitConfig {
        keep_from: dataset.options.keep_from,
        test_from: args.test_from,
        validation_ratio: args.validation_ratio,
        seed: args.seed,
        cold_items: args.cold_items,
    };
    let split = Split::new(&dataset.interactions, dataset.tracks.len(), config);
    let path = args.data.layout().split_file();
    SplitFile::new(&split, &dataset.interactions.users)
        .save(&path)
        .with_context(|| format!("could not write {}", path.display()))?;
    println!(
        "split at {} (plays kept from {}), seed {}, validation ratio {}",
        format_timestamp(config.test_from),
        format_timestamp(dataset.options.keep_from),
        config.seed,
        config.validation_ratio
    );
    println!(
        "{:<11} {:>8} {:>8} {:>13}",
        "part", "users", "items", "interactions"
    );
    let c = split.counts;
    for (name, p) in [
        ("train", c.train),
        ("validation", c.validation),
        ("test", c.test),
    ] {
        println!(
            "{name:<11} {:>8} {:>8} {:>13}",
            p.users, p.items, p.interactions
        );
    }
    if split.has_cold() {
        let cold = c.cold;
        println!(
            "cold tracks: {} ({} of the tracks in the plays) held out of train; held-out cold plays: validation {} users / {} interactions, test {} users / {} interactions",
            cold.tracks,
            config.cold_items,
            cold.validation.users,
            cold.validation.interactions,
            cold.test.users,
            cold.test.interactions
        );
    }
    println!("saved to {}", path.display());
    Ok(())
}
