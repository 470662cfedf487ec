//! An experiment's report, in the representation the client's `Accept` asks for: Tables
//! 1–3 and the significance tests as JSON, or what `audiorec report` writes (the
//! self-contained HTML page, CSV, Markdown, LaTeX), rendered by `eval::report` from the
//! stored runs alone. A grid still running reports the cells done so far.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem};
use super::experiments::ExperimentStatus;
use super::extract::{Json, Path};
use crate::dataset::SplitCounts;
use crate::eval::report::{
    BackendInfo, EpochLoss, GridReport, ModelKind, Table3, Variant, render_csv, render_html,
    render_latex, render_markdown,
};
use crate::eval::stored::LoadError;
use crate::experiment::load_report;

/// Representations served, in order of preference when the client accepts several
/// equally (the first is the default for `*/*` and for no `Accept`).
const TYPES: [&str; 5] = [
    "application/json",
    "text/html",
    "text/csv",
    "text/markdown",
    "application/x-latex",
];

/// The representation to send: the supported type with the highest `q` in `accept`
/// (ties go to [`TYPES`]' order), or `None` when the client accepts none of them.
fn negotiate(accept: Option<&str>) -> Option<&'static str> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(TYPES[0]);
    };
    let mut best: Option<(f64, usize)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").map(str::trim))
            .find_map(|q| q.parse::<f64>().ok())
            .unwrap_or(1.0);
        if q.is_nan() || q <= 0.0 {
            continue;
        }
        let (kind, sub) = media.split_once('/').unwrap_or((media.as_str(), ""));
        for (i, t) in TYPES.iter().enumerate() {
            let (tk, ts) = t.split_once('/').expect("a media type");
            let matches = (kind == "*" && sub == "*") || (kind == tk && (sub == "*" || sub == ts));
            let better = best.is_none_or(|(bq, bi)| q > bq || (q == bq && i < bi));
            if matches && better {
                best = Some((q, i));
            }
        }
    }
    best.map(|(_, i)| TYPES[i])
}

/// One trained or evaluated cell's training and timings.
#[derive(Serialize, ToSchema)]
pub struct CellTraining {
    pub model: ModelKind,
    pub variant: Variant,
    /// The row label: the backend, or "Random".
    #[schema(example = "musicnn")]
    pub label: String,
    /// Losses per finished epoch; empty for KNN.
    pub curve: Vec<EpochLoss>,
    pub train_seconds: Option<f64>,
    pub eval_seconds: f64,
    /// Recall of the served approximate index against the exact scan (KNN only).
    pub index_recall: Option<f64>,
}

/// The report as data: the paper's Tables 1–3 with the paired tests behind Table 3's
/// marks (t-test and Wilcoxon signed-rank over test users, Holm-corrected per block and
/// metric), plus the manifest and every cell's training curve.
#[derive(Serialize, ToSchema)]
pub struct ExperimentReport {
    #[schema(example = "9f1c2e7d40a3b8e1")]
    pub id: String,
    #[schema(example = "tiny, short training")]
    pub title: String,
    pub status: ExperimentStatus,
    /// Cells in the report, of `cells_total` (fewer while the grid runs).
    #[schema(example = 4)]
    pub cells_done: usize,
    #[schema(example = 4)]
    pub cells_total: usize,
    /// Cut-off of every metric.
    #[schema(example = 50)]
    pub k: usize,
    /// What produced it: embedding file hashes, split, model flags, version, machine.
    pub manifest: BTreeMap<String, String>,
    /// Table 1: backends and their dimensions, in row order.
    pub table1: Vec<BackendInfo>,
    /// Table 2: users, items and interactions of each part of the split.
    pub table2: SplitCounts,
    /// Table 3: test metrics with 95% half-widths and significance, one block per model.
    pub table3: Table3,
    pub training: Vec<CellTraining>,
}

fn as_json(id: String, status: ExperimentStatus, total: usize, r: GridReport) -> ExperimentReport {
    let training = r
        .cells
        .iter()
        .map(|c| CellTraining {
            model: c.model,
            variant: c.variant,
            label: c.label().to_string(),
            curve: c.curve.clone(),
            train_seconds: c.train_seconds,
            eval_seconds: c.eval_seconds,
            index_recall: c.index_recall,
        })
        .collect();
    ExperimentReport {
        id,
        status,
        cells_done: r.cells.len(),
        cells_total: total,
        table3: r.table3(),
        title: r.title,
        k: r.k,
        manifest: r.manifest,
        table1: r.backends,
        table2: r.split,
        training,
    }
}

/// The experiment's report (tables, significance, charts), from the stored runs, in the
/// representation `Accept` asks for: `application/json` (default), `text/html` (the page
/// `audiorec report` writes), `text/csv` (every metric with both p-values),
/// `text/markdown` or `application/x-latex` (Table 3 to paste into a paper). While the
/// grid runs it covers the cells done so far; before the first is done it is 409.
#[utoipa::path(get, path = "/v1/experiments/{experiment_id}/report", tag = "experiments",
    params(("experiment_id" = String, Path, description = "Experiment id", example = "9f1c2e7d40a3b8e1")),
    responses((status = 200, description = "The report",
                content((ExperimentReport = "application/json"), (String = "text/html"), (String = "text/csv"),
                        (String = "text/markdown"), (String = "application/x-latex"))),
              (status = 404, description = "Unknown experiment", body = Problem, content_type = "application/problem+json"),
              (status = 406, description = "None of the accepted types is served (the detail lists those that are)", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "No cell has finished yet", body = Problem, content_type = "application/problem+json")))]
pub async fn report(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let Some(media) = negotiate(accept) else {
        return Err(ApiError::NotAcceptable(format!(
            "the report is served as {}; the request accepts `{}`",
            TYPES.join(", "),
            accept.unwrap_or_default()
        )));
    };
    let record = state
        .store
        .get_experiment(&id)
        .await?
        .ok_or_else(|| ApiError::UnknownExperiment(id.clone()))?;
    let view = super::experiments::view(&state, record).await?;
    if view.cells_done == 0 {
        return Err(ApiError::Conflict(format!(
            "experiment `{id}` has no finished cell yet (it is {}); poll /v1/experiments/{id}",
            view.status.as_str()
        )));
    }
    let report = load_report(&state.store, &id).await.map_err(|e| match e {
        LoadError::Store(e) => e.into(),
        LoadError::Unknown(id) => ApiError::UnknownExperiment(id),
        e @ LoadError::Corrupt { .. } => ApiError::Internal(e.to_string()),
    })?;
    let body = match media {
        "application/json" => {
            let json = as_json(id, view.status, view.cells_total, report);
            let mut response = Json(json).into_response();
            response
                .headers_mut()
                .insert(header::VARY, HeaderValue::from_static("accept"));
            return Ok(response);
        }
        "text/html" => render_html(&report),
        "text/csv" => render_csv(&report),
        "text/markdown" => render_markdown(&report),
        _ => render_latex(&report),
    };
    let content_type = format!("{media}; charset=utf-8");
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::VARY, "accept".to_string()),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::negotiate;

    #[test]
    fn accept_picks_the_highest_q_then_the_served_order() {
        assert_eq!(negotiate(None), Some("application/json"));
        assert_eq!(negotiate(Some("*/*")), Some("application/json"));
        assert_eq!(negotiate(Some("text/html")), Some("text/html"));
        assert_eq!(
            negotiate(Some("text/html;q=0.5, text/csv")),
            Some("text/csv")
        );
        assert_eq!(negotiate(Some("text/*")), Some("text/html"));
        assert_eq!(
            negotiate(Some("application/x-latex, application/json; q=0.1")),
            Some("application/x-latex")
        );
        assert_eq!(negotiate(Some("TEXT/Markdown")), Some("text/markdown"));
        assert_eq!(negotiate(Some("image/png")), None);
        assert_eq!(negotiate(Some("text/html;q=0")), None);
    }
}
