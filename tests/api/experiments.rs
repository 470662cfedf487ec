//! The experiment API through the real server: a tiny grid (KNN and a one-epoch Shallow
//! Net on two backends of the tiny demo data) posted, run as a job to the end, and its
//! report fetched as JSON, HTML and CSV, each checked against the stored runs; refused
//! configurations write nothing; unknown ids and unserved types get their problems.

use std::time::{Duration, Instant};

use audiorec::eval::{Estimate, Metrics};
use serde_json::{Value, json};

use crate::helpers::{Db, TestApp, assert_problem, decode, on_both_databases, spawn_app};

/// Each database's test posts its own name, so the two (running at once on one dataset
/// folder) are different experiments with their own checkpoints.
fn tiny_grid(db: Db) -> Value {
    json!({
        "name": format!("api test on {db:?}"),
        "backends": ["musicnn", "noise"],
        "models": ["knn", "shallow"],
        "include_random": false,
        "shallow": {"epochs": 1, "batch_size": 2000.0}
    })
}

async fn get_as(app: &TestApp, path: &str, accept: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .header("accept", accept)
        .send()
        .await
        .expect("request")
}

async fn wait_until_finished(app: &TestApp, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let (status, body) = app.get(&format!("/v1/experiments/{id}")).await;
        assert_eq!(status, 200, "{body}");
        match body["status"].as_str().unwrap() {
            "succeeded" => return body,
            "failed" => panic!("the experiment failed: {body}"),
            _ => {}
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "never finished: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Test HitRate@k of every finished cell as the store holds its test run, by cell key.
async fn stored_hit_rates(app: &TestApp, id: &str) -> Vec<(String, Estimate)> {
    let mut out = Vec::new();
    for cell in app.store.experiment_cells(id).await.unwrap() {
        let run = app.store.get_run(&cell.test_run).await.unwrap().unwrap();
        let metrics: Metrics<Estimate> = serde_json::from_str(&run.metrics.unwrap()).unwrap();
        out.push((cell.cell, metrics.hit_rate));
    }
    out
}

on_both_databases!(
    a_posted_grid_runs_to_the_end_and_reports_in_every_format,
    |db| async move {
        let app = spawn_app(db).await;
        let r = app
            .client
            .post(format!("{}/v1/experiments", app.address))
            .json(&tiny_grid(db))
            .send()
            .await
            .unwrap();
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let (status, accepted) = decode(r).await;
        assert_eq!(status, 202, "{accepted}");
        let id = accepted["id"].as_str().unwrap().to_string();
        assert_eq!(location, format!("/v1/experiments/{id}"));
        assert_eq!(accepted["cells_total"], 4);
        let keys: Vec<&str> = accepted["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["cell"].as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "knn/content/musicnn",
                "knn/content/noise",
                "shallow/content/musicnn",
                "shallow/content/noise"
            ]
        );

        // The same configuration (spelled with an integer this time) is the same experiment.
        let mut again = tiny_grid(db);
        again["shallow"]["batch_size"] = json!(2000);
        let (status, same) = app.post("/v1/experiments", &again).await;
        assert_eq!((status, &same["id"]), (200, &json!(id)), "{same}");

        let finished = wait_until_finished(&app, &id).await;
        assert_eq!(finished["cells_done"], 4);
        let stored = stored_hit_rates(&app, &id).await;
        assert_eq!(stored.len(), 4);
        for (cell, (key, hit_rate)) in finished["cells"].as_array().unwrap().iter().zip(&stored) {
            assert_eq!(
                (cell["cell"].as_str().unwrap(), cell["status"].as_str()),
                (key.as_str(), Some("done"))
            );
            assert_eq!(
                cell["test_hit_rate"]["mean"].as_f64().unwrap(),
                hit_rate.mean
            );
        }
        let stored_mean = |key: &str| stored.iter().find(|(k, _)| k == key).unwrap().1.mean;

        // JSON: Table 3's rows are the stored runs' numbers, with their comparisons.
        let report_path = format!("/v1/experiments/{id}/report");
        let (status, report) = decode(get_as(&app, &report_path, "application/json").await).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(
            (report["cells_done"].as_u64(), report["k"].as_u64()),
            (Some(4), Some(50))
        );
        assert_eq!(report["table1"].as_array().unwrap().len(), 2);
        assert!(report["table2"]["test"]["users"].as_u64().unwrap() > 0);
        let blocks = report["table3"]["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 2);
        for (block, model) in blocks.iter().zip(["knn", "shallow"]) {
            assert_eq!(block["model"], model);
            let rows = block["rows"].as_array().unwrap();
            let labels: Vec<&str> = rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
            assert_eq!(labels, ["musicnn", "noise"]);
            for row in rows {
                let key = format!("{model}/content/{}", row["label"].as_str().unwrap());
                let mean = row["test"]["hit_rate"]["mean"].as_f64().unwrap();
                assert!((mean - stored_mean(&key)).abs() < 1e-12, "{key}: {mean}");
            }
            // The backend that is not best on validation is compared with the best.
            let vs_best = block["comparisons"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["kind"] == "vs_best" && c["metric"] == "hit_rate")
                .count();
            assert_eq!(vs_best, 1, "{block}");
        }
        let curves = report["training"].as_array().unwrap();
        assert_eq!(curves.len(), 4);
        assert_eq!(
            curves[2]["curve"].as_array().unwrap().len(),
            1,
            "one epoch of the Shallow Net"
        );

        // HTML: the page `audiorec report` writes, with the same numbers to three places.
        let r = get_as(&app, &report_path, "text/html").await;
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = r.text().await.unwrap();
        for needle in [
            "<!DOCTYPE html>",
            "Table 1",
            "Table 2",
            "Table 3",
            "<svg",
            "noise",
            "api test on",
        ] {
            assert!(html.contains(needle), "no `{needle}` in the HTML");
        }
        assert!(html.contains(&format!("{:.3}", stored_mean("knn/content/musicnn"))));

        // CSV: five metrics per row of Table 3, the means at full precision.
        let r = get_as(&app, &report_path, "text/csv, text/html;q=0.5").await;
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let csv = r.text().await.unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 1 + 4 * 5, "{csv}");
        let header: Vec<&str> = lines[0].split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        for line in &lines[1..] {
            let f: Vec<&str> = line.split(',').collect();
            if f[col("metric")] == "hit_rate" {
                let key = format!("{}/content/{}", f[col("model")], f[col("backend")]);
                let mean: f64 = f[col("mean")].parse().unwrap();
                assert!((mean - stored_mean(&key)).abs() < 1e-12, "{line}");
            }
        }

        // Markdown and LaTeX come from the same renderers.
        let r = get_as(&app, &report_path, "text/markdown").await;
        assert!(r.text().await.unwrap().contains("noise |"));
        let r = get_as(&app, &report_path, "application/x-latex").await;
        assert!(r.text().await.unwrap().contains("\\begin{tabular}"));

        let refused = decode(get_as(&app, &report_path, "image/png").await).await;
        assert_problem(&refused, 406, "not-acceptable");
        assert!(refused.1["detail"].as_str().unwrap().contains("text/html"));

        let (status, list) = app.get("/v1/experiments?limit=10").await;
        assert_eq!(status, 200);
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .any(|e| e["id"] == json!(id))
        );
    }
);

on_both_databases!(refused_configurations_write_nothing, |db| async move {
    let app = spawn_app(db).await;
    let cases = [
        (json!({"backends": ["vggish"]}), "no backend `vggish`"),
        (json!({"models": ["knn", "svd"]}), "unknown variant"),
        (json!({"k": 0}), "k must be 1 to 1000"),
        (json!({"shallow": {"epochs": 1001}}), "shallow.epochs"),
        (json!({"shallow": {"epoch": 3}}), "unknown field"),
        (json!({"bert4rec": {"random_hidden": 33}}), "even"),
        (json!({"k": 2.5}), "invalid type"),
        // The paper's grid: far above a service's budget.
        (json!({}), "budget"),
    ];
    for (body, why) in cases {
        let response = app.post("/v1/experiments", &body).await;
        assert_problem(&response, 422, "invalid-request");
        let detail = response.1["detail"].as_str().unwrap();
        assert!(detail.contains(why), "{body}: {detail}");
    }
    assert!(app.store.list_experiments(10, 0).await.unwrap().is_empty());
    let (status, list) = app.get("/v1/experiments").await;
    assert_eq!((status, list), (200, json!([])));
});

on_both_databases!(
    unknown_and_unfinished_experiments_get_problems,
    |db| async move {
        let app = spawn_app(db).await;
        assert_problem(
            &app.get("/v1/experiments/nope").await,
            404,
            "unknown-experiment",
        );
        let report = decode(get_as(&app, "/v1/experiments/nope/report", "text/html").await).await;
        assert_problem(&report, 404, "unknown-experiment");
        // Queued without a job, so no cell ever finishes: its report is a conflict.
        let config = json!({"backends": ["mfcc"], "models": ["knn"]}).to_string();
        let header = json!({"title": "t", "k": 50, "manifest": {}, "backends": [{"name": "mfcc", "dim": 13}],
        "split": {"train": {"users": 1, "items": 1, "interactions": 1},
                  "validation": {"users": 1, "items": 1, "interactions": 1},
                  "test": {"users": 1, "items": 1, "interactions": 1}}})
    .to_string();
        assert!(
            app.store
                .queue_experiment("waiting", "t", &config, &header)
                .await
                .unwrap()
        );
        let (status, waiting) = app.get("/v1/experiments/waiting").await;
        assert_eq!(status, 200, "{waiting}");
        assert_eq!(waiting["status"], "queued");
        assert_eq!(waiting["cells"][0]["status"], "pending");
        let report = decode(get_as(&app, "/v1/experiments/waiting/report", "*/*").await).await;
        assert_problem(&report, 409, "conflict");
    }
);
