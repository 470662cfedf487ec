//! Offline evaluation: metrics per user, aggregates with confidence half-widths, paired
//! tests between runs, and the report the CLI prints and writes.
//!
//! **Hot and cold** (a split with cold tracks, as the authors' journal follow-up
//! evaluates): per user, the held-out tracks are split into hot ones (seen in train) and
//! cold ones (held out of training, [`crate::dataset::split::Split::held_subset`]). The
//! hot metrics score the model's ranking of the hot tracks alone against the hot
//! held-out tracks; the cold metrics its ranking of the cold tracks alone against the
//! cold held-out tracks — the usual item cold-start protocol, where a cold item competes
//! with the other cold items, not with the whole catalogue. Equivalently: the full list
//! filtered to the subset's candidates, then cut at k. HitRate, Recall and NDCG keep
//! their definitions (see [`metrics`]) with T and P so restricted; a user with no held-out
//! track in a subset is left out of that subset's average. Besides, the whole list
//! (hot and cold tracks together, what is served) is scored against all held-out tracks.

pub mod metrics;
pub mod report;
pub mod runs;
pub mod stats;
pub mod stored;

use std::time::Instant;

pub use metrics::{Metrics, score_user};
pub use stats::{Estimate, PairedTest, estimate, holm, paired_test};

use crate::dataset::split::HeldOut;
use crate::dataset::{Split, Vocab};
use crate::recommend::{Query, RecommendError, Recommender, Scored};

/// One user to evaluate: the history the model sees and the held-out tracks it should find.
#[derive(Debug, Clone, Copy)]
pub struct EvalCase<'a> {
    pub user: Option<&'a str>,
    pub history: &'a [u32],
    pub held_out: &'a [u32],
}

/// The cases of a split's held-out users: their train history and held-out tracks, named
/// by user id so that models with learned user vectors find theirs.
pub fn split_cases<'a>(
    split: &'a Split,
    held: &'a [HeldOut],
    users: &'a Vocab,
) -> Vec<EvalCase<'a>> {
    held.iter()
        .map(|h| EvalCase {
            user: Some(users.id(h.user)),
            history: &split.train[h.user as usize],
            held_out: &h.tracks,
        })
        .collect()
}

/// Evaluates `held` (a part of `split`, or one subset of it) through `recommender`.
pub fn evaluate_held(
    recommender: &dyn Recommender,
    split: &Split,
    held: &[HeldOut],
    users: &Vocab,
    k: usize,
) -> Result<Evaluation, RecommendError> {
    let cases = split_cases(split, held, users);
    evaluate(recommender, &cases, k).map(|(e, _)| e)
}

/// The outcome of evaluating a set of users.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub k: usize,
    pub per_user: Vec<Metrics<f64>>,
    pub aggregate: Metrics<Estimate>,
    pub seconds: f64,
}

/// Mean and 95% half-width of each metric over users.
pub fn aggregate(per_user: &[Metrics<f64>]) -> Metrics<Estimate> {
    Metrics::from_fn(|i| {
        let xs: Vec<f64> = per_user.iter().map(|m| *m.values()[i]).collect();
        estimate(&xs)
    })
}

/// Asks `recommender` for each case's top-k (through the same path the API serves) and
/// scores it. A case with an empty history gets no recommendations and scores zero.
pub fn evaluate(
    recommender: &dyn Recommender,
    cases: &[EvalCase],
    k: usize,
) -> Result<(Evaluation, Vec<Vec<Scored>>), RecommendError> {
    let start = Instant::now();
    let queries: Vec<Query> = cases
        .iter()
        .map(|c| Query {
            user: c.user,
            history: c.history,
            k,
        })
        .collect();
    let lists = recommender
        .recommend_batch(&queries)
        .into_iter()
        .map(|r| match r {
            Err(RecommendError::EmptyHistory) => Ok(Vec::new()),
            other => other,
        })
        .collect::<Result<Vec<_>, _>>()?;
    let per_user: Vec<Metrics<f64>> = lists
        .iter()
        .zip(cases)
        .map(|(list, case)| {
            let ids: Vec<u32> = list.iter().map(|s| s.track).collect();
            score_user(&ids, case.held_out, k)
        })
        .collect();
    let evaluation = Evaluation {
        k,
        aggregate: aggregate(&per_user),
        per_user,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((evaluation, lists))
}

/// Share of the exact lists' tracks that the served lists of the same cases hold too:
/// what an approximate index costs against the exact scan (ties make identity ambiguous,
/// so on catalogues with many equal scores this understates the served answer). Taking
/// lists rather than two models lets a caller drop the exact model before it builds the
/// served one: at 1,024-d each holds a copy of the catalogue.
pub fn list_recall(exact: &[Vec<Scored>], served: &[Vec<Scored>]) -> f64 {
    assert_eq!(exact.len(), served.len(), "one served list per exact list");
    let (mut found, mut total) = (0usize, 0usize);
    for (want, got) in exact.iter().zip(served) {
        let got: std::collections::HashSet<u32> = got.iter().map(|s| s.track).collect();
        total += want.len();
        found += want.iter().filter(|s| got.contains(&s.track)).count();
    }
    found as f64 / total.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(tracks: &[u32]) -> Vec<Scored> {
        tracks
            .iter()
            .map(|&track| Scored { track, score: 0.5 })
            .collect()
    }

    /// Recall counts the exact lists' tracks found anywhere in the served list of the same
    /// case, pooled over cases; an empty exact list (an empty history) adds nothing.
    #[test]
    fn list_recall_pools_found_tracks_over_cases() {
        let exact = [list(&[1, 2, 3, 4]), list(&[]), list(&[7, 8])];
        let served = [list(&[4, 3, 9, 10]), list(&[]), list(&[8, 7])];
        assert_eq!(list_recall(&exact, &served), 4.0 / 6.0);
        assert_eq!(list_recall(&[list(&[])], &[list(&[])]), 0.0);
    }
}
