//! Postgres stops under the service and comes back: what needs the database is answered
//! 503 problem+json at once, anonymous histories keep being served, `/ready` says not
//! ready, a batch of listens cut by the outage lands whole or not at all, and the service
//! recovers without a restart.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::helpers::{assert_problem, spawn_app_on, track_ids};

/// Longest a request may take to be answered while the database is known to be down.
const FAST: Duration = Duration::from_millis(300);

async fn wait_for_ready(app: &crate::helpers::TestApp, ready: bool) -> Duration {
    let start = Instant::now();
    loop {
        // `/ready` answers its own JSON, not a problem, when it is not ready.
        let url = format!("{}/ready", app.address);
        let status = app.client.get(url).send().await.unwrap().status();
        if (status == 200) == ready {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "/ready never became {}",
            if ready { "ready" } else { "unavailable" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_answered_fast_and_recovered_from() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let app = spawn_app_on(cluster.url("postgres"), |s| s.body_limit = 16 << 20).await;
    let tracks = track_ids();
    for user in ["alice", "bob"] {
        assert_eq!(
            app.post("/v1/users", &json!({"user_id": user})).await.0,
            201
        );
    }
    let listens: Vec<Value> = (0..5)
        .map(|i| json!({"track_id": tracks[i], "timestamp": i}))
        .collect();
    let (status, _) = app
        .post("/v1/users/alice/listens", &json!({"listens": listens}))
        .await;
    assert_eq!(status, 200);
    let (status, before) = app.get("/v1/users/alice/recommendations?k=10").await;
    assert_eq!(status, 200, "{before}");

    // A large batch for bob, cut by the outage while it is being written.
    let batch: Vec<Value> = (0..60_000)
        .map(|i| json!({"track_id": tracks[i % tracks.len()], "timestamp": i}))
        .collect();
    let batch = json!({"listens": batch});
    let writer = {
        let (client, url) = (
            app.client.clone(),
            format!("{}/v1/users/bob/listens", app.address),
        );
        tokio::spawn(async move { client.post(url).json(&batch).send().await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    cluster.stop();
    let cut = writer.await.unwrap().expect("the batch is answered");
    assert!(
        cut.status() == 200 || cut.status() == 503,
        "batch answered {}",
        cut.status()
    );

    let noticed = wait_for_ready(&app, false).await;
    eprintln!("outage noticed by /ready after {noticed:?}");
    for path in [
        "/v1/users/alice",
        "/v1/users/alice/recommendations?k=10",
        "/v1/users/alice/listens",
        "/v1/evaluations",
    ] {
        let start = Instant::now();
        let response = app.get(path).await;
        let took = start.elapsed();
        assert_problem(&response, 503, "unavailable");
        assert!(took < FAST, "{path} took {took:?} during the outage");
    }
    let start = Instant::now();
    let write = app
        .post(
            "/v1/users/alice/listens",
            &json!({"listens": [{"track_id": tracks[9], "timestamp": 99}]}),
        )
        .await;
    assert_problem(&write, 503, "unavailable");
    assert!(start.elapsed() < FAST);
    // Anonymous histories need no database.
    let (status, anonymous) = app
        .post(
            "/v1/recommendations",
            &json!({"history": [tracks[0], tracks[1]], "k": 5}),
        )
        .await;
    assert_eq!(status, 200, "{anonymous}");
    assert_eq!(anonymous["items"].as_array().unwrap().len(), 5);

    cluster.start_again();
    let recovered = wait_for_ready(&app, true).await;
    eprintln!("recovered {recovered:?} after Postgres started");
    let (status, after) = app.get("/v1/users/alice/recommendations?k=10").await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(
        after["items"], before["items"],
        "the same history, the same answer"
    );
    // Bob's batch landed whole or not at all.
    let (status, bob) = app.get("/v1/users/bob").await;
    assert_eq!(status, 200, "{bob}");
    let plays = bob["plays"].as_i64().unwrap();
    eprintln!(
        "the cut batch was answered {}, {plays} plays stored",
        cut.status()
    );
    assert!(
        plays == 0 || plays == 60_000,
        "a cut batch is all or nothing, found {plays} plays"
    );
    if cut.status() == 200 {
        assert_eq!(plays, 60_000, "an acknowledged batch is stored");
    }
}
