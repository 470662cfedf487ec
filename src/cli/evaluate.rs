use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use audiorec::dataset::split::Part;
use audiorec::eval::report::Report;
use audiorec::eval::{evaluate, index_recall, split_cases};
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
    let build_start = Instant::now();
    let recommender = args.model.build(&dataset, &split)?;
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
    for part in [Part::Validation, Part::Test] {
        let held = split.part(part);
        let users = &dataset.interactions.users;
        let cases = split_cases(&split, held, users);
        let (evaluation, _) = evaluate(recommender.as_ref(), &cases, k)?;
        report.push_part(
            part.as_str(),
            &evaluation,
            held.iter().map(|h| users.id(h.user).to_string()),
        );
    }
    print!("{}", report.table());
    if args.model.model == Model::Knn && args.model.index == IndexKind::Exact {
        let served = ModelArgs {
            index: IndexKind::Hnsw,
            ..args.model.clone()
        }
        .build(&dataset, &split)?;
        let cases = split_cases(&split, &split.test, &dataset.interactions.users);
        let recall = index_recall(served.as_ref(), recommender.as_ref(), &cases, k)?;
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
