//! Table 3 and its renderers on a hand-built grid whose numbers can be checked by hand,
//! and on the synthetic example grid.

use std::collections::BTreeMap;

use super::*;
use crate::dataset::SplitCounts;
use crate::eval::Metrics;

/// A user's scores from their hit (0 or 1): every metric a fixed share of it.
fn user(hit: f64) -> Metrics<f64> {
    Metrics {
        hit_rate: hit,
        recall: 0.5 * hit,
        precision: 0.02 * hit,
        mrr: 0.25 * hit,
        ndcg: 0.3 * hit,
    }
}

/// Scores of `n` users named `{prefix}{i}`, the first `hits` of whom hit.
fn scores(prefix: &str, n: usize, hits: usize) -> UserScores {
    UserScores {
        user_ids: (0..n).map(|i| format!("{prefix}{i}")).collect(),
        scores: (0..n)
            .map(|i| user(if i < hits { 1.0 } else { 0.0 }))
            .collect(),
    }
}

fn cell(model: ModelKind, backend: Option<&str>, validation_hits: usize, test: UserScores) -> Cell {
    Cell {
        model,
        variant: if backend.is_some() {
            Variant::Content
        } else {
            Variant::Random
        },
        backend: backend.map(str::to_owned),
        validation: scores("v", 20, validation_hits),
        test,
        hot: None,
        cold: None,
        index_recall: (model == ModelKind::Knn).then_some(0.97),
        curve: if model == ModelKind::Knn {
            Vec::new()
        } else {
            (1..=5)
                .map(|e| EpochLoss {
                    epoch: e,
                    train_loss: 1.0 / e as f64,
                    validation_loss: 1.1 / e as f64,
                })
                .collect()
        },
        train_seconds: (model != ModelKind::Knn).then_some(61.0),
        eval_seconds: 2.5,
    }
}

/// KNN: alpha hits 16 of 20 test users, beta_2 2 of them, gamma exactly alpha's users;
/// gamma is best on validation (12 hits against alpha's 10). Shallow Net: alpha 16 and a
/// Random row with 3 hits, its users listed in reverse order (paired by id, not position).
fn hand_built() -> GridReport {
    let mut reversed = scores("t", 20, 3);
    reversed.user_ids.reverse();
    reversed.scores.reverse();
    GridReport {
        title: "Hand-built grid".into(),
        k: 50,
        manifest: BTreeMap::from([
            ("seed".into(), "7".into()),
            ("note".into(), "a <b> & c".into()),
        ]),
        backends: ["alpha", "beta_2", "gamma"]
            .iter()
            .map(|n| BackendInfo {
                name: (*n).into(),
                dim: 8,
            })
            .collect(),
        split: SplitCounts::default(),
        // Deliberately out of order: the report orders rows by `backends`.
        cells: vec![
            cell(ModelKind::Shallow, None, 2, reversed),
            cell(ModelKind::Knn, Some("gamma"), 12, scores("t", 20, 16)),
            cell(ModelKind::Knn, Some("alpha"), 10, scores("t", 20, 16)),
            cell(ModelKind::Shallow, Some("alpha"), 10, scores("t", 20, 16)),
            cell(ModelKind::Knn, Some("beta_2"), 2, scores("t", 20, 2)),
        ],
    }
}

#[test]
fn table3_numbers_match_a_hand_computation() {
    let table = hand_built().table3();
    assert_eq!(table.blocks.len(), 2);
    let knn = &table.blocks[0];
    assert_eq!(knn.model, ModelKind::Knn);
    let labels: Vec<&str> = knn.rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["alpha", "beta_2", "gamma"]);
    let alpha = &knn.rows[0];
    assert_eq!(alpha.test_users, 20);
    assert!((alpha.test.hit_rate.mean - 0.8).abs() < 1e-12);
    assert!((alpha.test.ndcg.mean - 0.24).abs() < 1e-12);
    // s² = (16·0.2² + 4·0.8²) / 19; t(0.975, 19) = 2.093024054.
    let hw = 2.093_024_054 * (3.2f64 / 19.0).sqrt() / 20f64.sqrt();
    assert!((alpha.test.hit_rate.half_width.unwrap() - hw).abs() < 1e-8);
    assert!((alpha.validation_hit_rate.mean - 0.5).abs() < 1e-12);
    // Best is chosen on validation (gamma), although alpha ties it on test.
    assert_eq!(knn.best, Some(2));
    let shallow = &table.blocks[1];
    assert_eq!(
        shallow.rows.iter().map(|r| r.letter).collect::<String>(),
        "ab"
    );
    assert_eq!(shallow.rows[1].label, "Random");
    assert!((shallow.rows[1].test.hit_rate.mean - 0.15).abs() < 1e-12);
}

#[test]
fn marks_follow_significant_differences_only() {
    let report = hand_built();
    let table = report.table3();
    let knn = &table.blocks[0];
    // gamma (best) beats beta_2 clearly; alpha equals gamma and was not compared with beta_2.
    assert_eq!(knn.rows[2].marks.hit_rate, "b");
    assert_eq!(knn.rows[2].marks.ndcg, "b");
    assert_eq!(knn.rows[0].marks.hit_rate, "");
    assert_eq!(knn.rows[1].marks.hit_rate, "");
    // Shallow Net alpha beats its Random row, paired by user id despite the reversed order.
    let shallow = &table.blocks[1];
    assert_eq!(shallow.rows[0].marks.hit_rate, "b");
    assert_eq!(shallow.rows[1].marks.hit_rate, "");

    let comparisons: Vec<&Comparison> = knn
        .comparisons
        .iter()
        .filter(|c| c.metric == "hit_rate")
        .collect();
    assert_eq!(comparisons.len(), 2);
    let (identical, different) = (comparisons[0], comparisons[1]);
    assert_eq!(knn.comparisons.len(), 2 * 5);
    // Shallow Net: alpha against Random only (alpha is its own block's best).
    assert_eq!(shallow.comparisons.len(), 5);
    assert_eq!((identical.row, identical.against), (0, 2));
    assert_eq!(identical.test.t_test_p, 1.0);
    assert_eq!(identical.t_test_p_holm, 1.0);
    assert_eq!((different.row, different.against), (1, 2));
    assert!(different.test.mean_difference < -0.6);
    // Holm over two comparisons: the smaller p doubles; the larger stays 1.
    assert!((different.t_test_p_holm - 2.0 * different.test.t_test_p).abs() < 1e-15);
    assert!((different.wilcoxon_p_holm - 2.0 * different.test.wilcoxon_p).abs() < 1e-15);
    assert!(different.t_test_p_holm < 1e-4);
}

#[test]
fn csv_has_every_row_metric_and_both_p_values() {
    let csv = render_csv(&hand_built());
    let lines: Vec<&str> = csv.lines().collect();
    // (3 KNN rows + 2 Shallow rows) × 5 metrics + header.
    assert_eq!(lines.len(), 1 + 5 * 5);
    let header: Vec<&str> = lines[0].split(',').collect();
    for column in [
        "mean",
        "half_width",
        "vs_random_t_test_p_holm",
        "vs_best_wilcoxon_p",
        "vs_best_effect_size_dz",
    ] {
        assert!(header.contains(&column), "{column}");
    }
    assert!(lines.iter().all(|l| l.split(',').count() == header.len()));
    for metric in ["hit_rate", "recall", "precision", "mrr", "ndcg"] {
        assert!(
            csv.contains(&format!("knn,content,beta_2,b,false,{metric},50,20,")),
            "{metric}"
        );
    }
    let beta = lines
        .iter()
        .find(|l| l.starts_with("knn,content,beta_2,b,false,hit_rate"))
        .unwrap();
    let fields: Vec<&str> = beta.split(',').collect();
    let column = |name: &str| fields[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(column("vs_best_against"), "gamma");
    assert_eq!(column("vs_random_against"), "");
    assert!(column("vs_best_t_test_p_holm").parse::<f64>().unwrap() < 1e-4);
    assert!(csv.contains("shallow,random,Random,b,false,mrr"));
}

#[test]
fn latex_and_markdown_carry_rows_marks_and_footnote() {
    let report = hand_built();
    let tex = render_latex(&report);
    for needle in [
        "\\toprule",
        "\\midrule",
        "\\bottomrule",
        "(b) beta\\_2",
        "$^{b}$",
        "Holm",
        "$<$ 0.05",
        "95\\%",
    ] {
        assert!(tex.contains(needle), "{needle}\n{tex}");
    }
    assert_eq!(tex.matches("\\\\\n").count(), 1 + 5, "{tex}");
    let md = render_markdown(&report);
    assert!(md.contains("| KNN | (a) alpha |"), "{md}");
    assert!(md.contains("| Shallow Net | (a) alpha ◆ |"));
    assert!(
        md.contains("(c) gamma ◆ | **0.800** ± 0.192<sup>b</sup> |"),
        "{md}"
    );
    assert!(md.contains("| (b) Random |"));
    assert!(md.contains("Holm-corrected"));
}

fn balanced(html: &str, tag: &str) -> usize {
    let open =
        html.matches(&format!("<{tag}>")).count() + html.matches(&format!("<{tag} ")).count();
    assert_eq!(
        open,
        html.matches(&format!("</{tag}>")).count(),
        "<{tag}> unbalanced"
    );
    open
}

#[test]
fn html_is_self_contained_and_holds_every_table_and_chart() {
    for report in [hand_built(), GridReport::example()] {
        let html = render_html(&report);
        assert!(html.starts_with("<!DOCTYPE html>"));
        for id in [
            "table-results",
            "table-backends",
            "table-split",
            "table-timings",
            "table-manifest",
            "chart-hit-rate",
            "chart-curves",
        ] {
            assert_eq!(html.matches(&format!("id=\"{id}\"")).count(), 1, "{id}");
        }
        assert_eq!(balanced(&html, "svg"), 2);
        assert_eq!(balanced(&html, "table"), 5);
        for tag in [
            "tr", "td", "section", "figure", "sup", "title", "text", "rect",
        ] {
            balanced(&html, tag);
        }
        assert!(
            !html.contains("<script")
                && !html.contains("http://www.w3.org/1999")
                && !html.contains("src=")
        );
        assert!(html.contains("a &lt;b&gt; &amp; c") || report.title != "Hand-built grid");
    }
}

#[test]
fn the_example_grid_has_the_papers_shape() {
    let report = GridReport::example();
    let round_trip: GridReport =
        serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(round_trip, report);
    let table = report.table3();
    let sizes: Vec<usize> = table.blocks.iter().map(|b| b.rows.len()).collect();
    assert_eq!(sizes, [4, 5, 5]);
    for block in &table.blocks {
        assert_eq!(
            block.rows[block.best.unwrap()].label,
            "musicnn",
            "{:?}",
            block.model
        );
        let hit = |label: &str| {
            block
                .rows
                .iter()
                .find(|r| r.label == label)
                .unwrap()
                .test
                .hit_rate
                .mean
        };
        assert!(hit("musicnn") > hit("noise"));
        // The best backend is significantly better than the noise backend (letter d).
        assert!(
            block.rows[block.best.unwrap()].marks.hit_rate.contains('d'),
            "{:?}",
            block.model
        );
    }
    let knn = table.blocks[0].rows[0].test.hit_rate.mean;
    let shallow = table.blocks[1].rows[0].test.hit_rate.mean;
    assert!(shallow > knn);
}

#[test]
fn users_pair_by_id_over_those_both_cells_have() {
    let a = scores("u", 4, 2);
    let mut b = scores("u", 5, 0);
    b.user_ids.reverse();
    // a: u0 u1 u2 u3; b: u4 u3 u2 u1 u0 → a's users at b's positions 4, 3, 2, 1.
    assert_eq!(a.pairs(&b), vec![(0, 4), (1, 3), (2, 2), (3, 1)]);
    assert_eq!(b.pairs(&a), vec![(1, 3), (2, 2), (3, 1), (4, 0)]);
    assert_eq!(a.pairs(&a), vec![(0, 0), (1, 1), (2, 2), (3, 3)]);
    assert!(a.pairs(&scores("w", 3, 0)).is_empty());
}

/// The hand-built grid on a split with cold tracks: every cell with hot scores (10 of 20
/// hit), content cells with cold scores (9 of 12 hit), the Random row without, and a
/// shuffled control of KNN alpha (hot 5 of 20, cold 1 of 12).
fn with_cold() -> GridReport {
    use crate::dataset::split::{ColdCounts, PartCounts};
    let mut report = hand_built();
    let part = |users, items, interactions| PartCounts {
        users,
        items,
        interactions,
    };
    report.split.cold = ColdCounts {
        tracks: 7,
        validation: part(3, 4, 5),
        test: part(4, 5, 6),
    };
    for c in &mut report.cells {
        c.hot = Some(scores("t", 20, 10));
        c.cold = (c.variant == Variant::Content).then(|| scores("c", 12, 9));
    }
    let mut control = cell(ModelKind::Knn, Some("alpha"), 3, scores("t", 20, 4));
    control.variant = Variant::Shuffled;
    control.hot = Some(scores("t", 20, 5));
    control.cold = Some(scores("c", 12, 1));
    report.cells.push(control);
    report
}

#[test]
fn hot_and_cold_columns_appear_only_with_cold_tracks() {
    let plain = hand_built();
    assert!(plain.cold_table(&plain.table3()).is_none());
    let md = render_markdown(&plain);
    assert!(!md.contains("Hot and cold") && !md.contains("(cold)"));
    assert!(!render_csv(&plain).contains("cold_"));
    assert!(!render_html(&plain).contains("table-cold"));
    assert!(!render_latex(&plain).contains("tab:cold"));

    let report = with_cold();
    let table = report.table3();
    let cold = report.cold_table(&table).expect("a cold table");
    assert_eq!((cold.hot_users, cold.cold_users), (20, 12));
    let knn = &cold.blocks[0];
    let labels: Vec<&str> = knn.rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["alpha", "beta_2", "gamma", "alpha shuffled"]);
    let alpha = &knn.rows[0];
    let alpha_cold = alpha.cold.as_ref().unwrap();
    assert!((alpha_cold.metrics.hit_rate.mean - 0.75).abs() < 1e-12);
    // Cold: 8 of 12 users better than the control, t = 4.69 (df 11), Holm over three
    // content rows still far below 0.05; hot: t = 2.52 (df 19), p ≈ 0.021, ×3 > 0.05.
    assert_eq!(alpha_cold.marks.hit_rate, "d");
    assert_eq!(alpha.hot.as_ref().unwrap().marks.hit_rate, "");
    let (against, tests) = alpha_cold.vs_shuffled.as_ref().unwrap();
    assert_eq!(*against, 3);
    assert!((tests.hit_rate.0.mean_difference - 8.0 / 12.0).abs() < 1e-12);
    assert!(tests.hit_rate.1 < 0.01, "{}", tests.hit_rate.1);
    assert!(knn.rows[3].cold.as_ref().unwrap().vs_shuffled.is_none());
    // The Random row of the Shallow Net has hot results and no cold ones.
    let random = &cold.blocks[1].rows[1];
    assert_eq!(random.label, "Random");
    assert!(random.hot.is_some() && random.cold.is_none());

    let md = render_markdown(&report);
    assert!(md.contains("## Hot and cold"), "{md}");
    assert!(md.contains("| Test (cold) | 4 | 5 | 6 |"), "{md}");
    assert!(md.contains("| (d) alpha shuffled |"), "{md}");
    assert!(md.contains("0.750 ± "), "{md}");
    let csv = render_csv(&report);
    let header = csv.lines().next().unwrap();
    assert!(header.ends_with(
        ",cold_users,cold_mean,cold_half_width,cold_marks,cold_vs_shuffled,cold_vs_shuffled_t_test_p_holm"
    ));
    let columns = header.split(',').count();
    assert!(csv.lines().all(|l| l.split(',').count() == columns));
    let alpha_hit = csv
        .lines()
        .find(|l| l.starts_with("knn,content,alpha,a,") && l.contains(",hit_rate,"))
        .unwrap();
    assert!(alpha_hit.contains(",12,0.75,"), "{alpha_hit}");
    assert!(alpha_hit.contains(",d,alpha shuffled,"), "{alpha_hit}");
    let html = render_html(&report);
    assert!(html.contains("id=\"table-cold\"") && html.contains("Test (cold)"));
    assert_eq!(balanced(&html, "table"), 6);
    let tex = render_latex(&report);
    assert!(tex.contains("\\label{tab:cold}") && tex.contains("alpha shuffled"));
}
