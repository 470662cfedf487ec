use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use audiorec::dataset::split::{Part, Subset};
use audiorec::eval::report::Report;
use audiorec::eval::{evaluate, evaluate_held, list_recall, split_cases};
use audiorec::index::IndexKind;

use super::DataArgs;
use super::model::{Model, ModelArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// Cut-off of the metrics.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
    k: u64,
    /// Write the report (aggregates, parameters, every user's metrics) as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (dataset, split) = args.data.open_split()?;
    let users = &dataset.interactions.users;
    // Loaded once for every model below: at 1,024-d a backend's matrix is 230 MB.
    let embeddings = args.model.embeddings(&dataset)?;
    let build_start = Instant::now();
    let recommender = args.model.build(&dataset, &split, &embeddings)?;
    let build_seconds = build_start.elapsed().as_secs_f64();
    let k = args.k as usize;
    let mut parameters = args.model.parameters();
    parameters["split"] = serde_json::to_value(split.config)?;
    parameters["counts"] = serde_json::to_value(split.counts)?;
    parameters["build_seconds"] = build_seconds.into();
    let mut report = Report {
        model: recommender.model().into(),
        backend: recommender.backend().into(),
        k,
        parameters,
        parts: Vec::new(),
        users: Vec::new(),
    };
    let mut test_lists = Vec::new();
    for part in [Part::Validation, Part::Test] {
        let held = split.part(part);
        let (evaluation, lists) =
            evaluate(recommender.as_ref(), &split_cases(&split, held, users), k)?;
        report.push_part(
            part.as_str(),
            &evaluation,
            held.iter().map(|h| users.id(h.user).to_string()),
        );
        if part == Part::Test {
            test_lists = lists;
        }
    }
    let measure_served = args.model.model == Model::Knn && args.model.index == IndexKind::Exact;
    // One model at a time from here on, so memory holds one copy of the catalogue's rows.
    drop(recommender);
    if split.has_cold() {
        // Each subset ranked on its own: the model built over the hot (train) tracks, and
        // over the cold tracks where it reads content (see `audiorec::eval`).
        let mut subsets = vec![(Subset::Hot, &split.train_items[..])];
        if args.model.reads_content(&dataset)? {
            subsets.push((Subset::Cold, &split.cold_items[..]));
        } else {
            println!(
                "{} learned its item rows from plays alone: cold tracks are not recommendable, no cold metrics",
                report.model
            );
        }
        let mut parts = Vec::new();
        for (subset, items) in subsets {
            let model = args.model.build_over(&dataset, &embeddings, items)?;
            for part in [Part::Validation, Part::Test] {
                let held = split.held_subset(part, subset);
                let evaluation = evaluate_held(model.as_ref(), &split, &held, users, k)?;
                parts.push((part, subset, evaluation, held));
            }
        }
        // In the report: validation hot, validation cold, test hot, test cold.
        parts.sort_by_key(|(part, subset, ..)| (*part != Part::Validation, *subset != Subset::Hot));
        for (part, subset, evaluation, held) in parts {
            report.push_part(
                &format!("{} {}", part.as_str(), subset.as_str()),
                &evaluation,
                held.iter().map(|h| users.id(h.user).to_string()),
            );
        }
    }
    print!("{}", report.table());
    if split.has_cold() {
        println!(
            "hot/cold: each subset's tracks ranked alone against the user's held-out tracks of that subset; users without any are left out ({} cold tracks)",
            split.cold_items.len()
        );
    }
    if measure_served {
        let served = ModelArgs {
            index: IndexKind::Hnsw,
            ..args.model.clone()
        }
        .build(&dataset, &split, &embeddings)?;
        let (_, served_lists) =
            evaluate(served.as_ref(), &split_cases(&split, &split.test, users), k)?;
        let recall = list_recall(&test_lists, &served_lists);
        println!(
            "served index (hnsw, ef_search {}): recall@{k} {recall:.4} against the exact scan on test users",
            args.model.ef_search
        );
        report.parameters["served_index_recall"] = recall.into();
    }
    println!(
        "built in {build_seconds:.1} s; evaluated in {:.2} s",
        report.parts.iter().map(|p| p.seconds).sum::<f64>()
    );
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("could not write {}", out.display()))?;
        println!("report written to {}", out.display());
    }
    Ok(())
}
