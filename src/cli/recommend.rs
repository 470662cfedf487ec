use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use audiorec::dataset::split::Part;
use audiorec::recommend::{Query, RecommendError};

use super::DataArgs;
use super::model::ModelArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// A file of user ids, one per line.
    #[arg(long, conflicts_with = "split")]
    users: Option<PathBuf>,
    /// All users of a held-out part.
    #[arg(long, value_enum)]
    split: Option<Part>,
    /// Recommendations per user.
    #[arg(long, default_value_t = 100)]
    k: usize,
    /// Output TSV: user_id, track_id, rank, score.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (dataset, split) = args.data.open_split()?;
    let users = &dataset.interactions.users;
    let selected: Vec<u32> = match (&args.users, args.split) {
        (Some(file), _) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("could not read {}", file.display()))?;
            text.lines()
                .enumerate()
                .map(|(line, id)| (line, id.trim()))
                .filter(|(_, id)| !id.is_empty())
                .map(|(line, id)| {
                    users.get(id).with_context(|| {
                        format!("{}: line {}: unknown user `{id}`", file.display(), line + 1)
                    })
                })
                .collect::<anyhow::Result<_>>()?
        }
        (None, Some(part)) => split.part(part).iter().map(|h| h.user).collect(),
        (None, None) => {
            bail!("say whose recommendations to write: --users FILE or --split validation|test")
        }
    };
    let recommender = args
        .model
        .build(&dataset, &split, &args.model.embeddings(&dataset)?)?;
    let queries: Vec<Query> = selected
        .iter()
        .map(|&u| Query {
            user: Some(users.id(u)),
            history: &split.train[u as usize],
            k: args.k,
        })
        .collect();
    let lists = recommender.recommend_batch(&queries);
    let mut w = BufWriter::new(
        std::fs::File::create(&args.out)
            .with_context(|| format!("could not create {}", args.out.display()))?,
    );
    writeln!(w, "user_id\ttrack_id\trank\tscore")?;
    let mut without_history = 0;
    for (&u, list) in selected.iter().zip(lists) {
        let list = match list {
            Ok(list) => list,
            Err(RecommendError::EmptyHistory) => {
                without_history += 1;
                continue;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("recommending for user `{}`", users.id(u)));
            }
        };
        for (rank, s) in list.iter().enumerate() {
            writeln!(
                w,
                "{}\t{}\t{}\t{:.6}",
                users.id(u),
                dataset.tracks.id(s.track),
                rank + 1,
                s.score
            )?;
        }
    }
    w.flush()?;
    println!(
        "wrote recommendations for {} users to {} ({without_history} without train history got none)",
        selected.len() - without_history,
        args.out.display()
    );
    Ok(())
}
