//! Start-up through the real server: it answers as soon as it listens, while its indexes
//! are built in the background (a backend still building answers 503 with `Retry-After`,
//! `/ready` names it), and on demo data without checkpoints it trains the Shallow Net and
//! BERT4Rec while serving, each servable without a restart and loaded, not retrained, at
//! the next start.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use audiorec::dataset::demo::{self, Scale};
use audiorec::index::IndexKind;
use serde_json::{Value, json};

use crate::helpers::{Db, database_url, decode, settings, spawn_listening};
use crate::process::Server;

/// A demo dataset of `scale` in a folder of its own (no checkpoints, no cached graphs).
fn fresh_demo(scale: Scale) -> PathBuf {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    demo::generate(&dir, scale, 5).expect("demo data");
    dir
}

/// The first ids of a dataset's catalog.
fn first_tracks(data: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(data.join("trackid_sorted.csv")).unwrap();
    text.lines()
        .skip(1)
        .take(n)
        .map(|l| l.split(',').nth(1).unwrap().to_string())
        .collect()
}

/// Status and JSON body of a GET (`/ready` answers its own JSON when not ready, not a
/// problem).
async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

/// Polls `check` on `url` every 100 ms until it holds; panics after `limit`.
async fn wait_for(
    client: &reqwest::Client,
    url: &str,
    limit: Duration,
    check: impl Fn(u16, &Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let (status, body) = get_json(client, url).await;
        if check(status, &body) {
            return body;
        }
        assert!(
            start.elapsed() < limit,
            "{url} never got there; last answer {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// HNSW graphs take seconds to build in a test build, even over the 800 tracks of `tiny`
/// data: the service
/// listens before, `/health` answers, `/ready` says starting and names the backends still
/// building, a request for one of those is answered 503 `not-ready` with a `Retry-After`
/// while a ready backend serves, and every backend serves once `/ready` says ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_answers_while_its_indexes_build() {
    let data = fresh_demo(Scale::Tiny);
    let mut s = settings(database_url(Db::Sqlite).await);
    s.data = data.clone();
    s.backends = vec!["musicnn".into(), "noise".into()];
    s.index = IndexKind::Hnsw;
    let started = Instant::now();
    let app = spawn_listening(&s).await;
    let listening = started.elapsed();

    let (status, health) = app.get("/health").await;
    assert_eq!((status, health), (200, json!({"status": "ok"})));
    let (status, ready) = get_json(&app.client, &format!("{}/ready", app.address)).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "starting", "{ready}");
    assert_eq!(ready["database_ok"], true, "{ready}");
    let building: Vec<String> = ["musicnn", "noise"]
        .into_iter()
        .filter(|b| ready["backends"][b] == "building")
        .map(String::from)
        .collect();
    assert!(
        !building.is_empty(),
        "nothing building right after listening: {ready}"
    );
    // The one expected last is surely still building when asked next.
    let entries = ready["entries"].as_array().unwrap();
    let last = entries
        .iter()
        .filter(|e| e["state"] == "building")
        .max_by_key(|e| e["ready_in"].as_u64().unwrap())
        .unwrap();
    let backend = last["backend"].as_str().unwrap().to_string();
    assert_eq!(last["model"], "knn");
    assert_eq!(last["serving"], false);

    let tracks = first_tracks(&data, 3);
    let ask = |backend: String| {
        let body = json!({"history": tracks, "backend": backend, "k": 5});
        app.client
            .post(format!("{}/v1/recommendations", app.address))
            .json(&body)
            .send()
    };
    let response = ask(backend.clone()).await.expect("request");
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("whole seconds");
    let (status, problem) = decode(response).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["type"], "/problems/not-ready");
    assert!(
        problem["detail"].as_str().unwrap().contains(&backend),
        "{problem}"
    );
    assert!(
        (1..=600).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    let (status, similar) = app
        .get(&format!(
            "/v1/tracks/{}/similar?backend={backend}",
            tracks[0]
        ))
        .await;
    assert_eq!(status, 503, "{similar}");

    let ready = wait_for(
        &app.client,
        &format!("{}/ready", app.address),
        Duration::from_secs(300),
        |status, _| status == 200,
    )
    .await;
    let all_ready = started.elapsed();
    assert_eq!(ready["status"], "ready");
    // With the MusiCNN weights installed, uploads get backends of their own (empty here).
    let (backends, models) = if crate::helpers::audio_backends_served() {
        (
            json!({"mfcc-audio": "ready", "musicnn": "ready", "musicnn-audio": "ready", "noise": "ready"}),
            json!([
                "knn/mfcc-audio",
                "knn/musicnn",
                "knn/musicnn-audio",
                "knn/noise"
            ]),
        )
    } else {
        (
            json!({"musicnn": "ready", "noise": "ready"}),
            json!(["knn/musicnn", "knn/noise"]),
        )
    };
    assert_eq!(ready["backends"], backends);
    assert_eq!(ready["models"], models);
    for backend in ["musicnn", "noise"] {
        let (status, recs) = decode(ask(backend.into()).await.expect("request")).await;
        assert_eq!(status, 200, "{recs}");
        assert_eq!(recs["items"].as_array().unwrap().len(), 5);
    }
    eprintln!(
        "tiny data, 2 HNSW backends: listening after {listening:?}, ready after {all_ready:?}; Retry-After said {retry_after} s"
    );
}

/// On fresh tiny demo data with one-epoch demo training, the real binary lists the
/// Shallow Net and BERT4Rec on musicnn as training, serves each without a restart once
/// trained, saves their checkpoints, and a second start loads them instead of training.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_models_are_trained_in_the_background_and_loaded_at_the_next_start() {
    let data = fresh_demo(Scale::Tiny);
    let url = database_url(Db::Sqlite).await;
    let server = Server::start_on(&data, &url, &["--demo-epochs", "1"]).await;
    let client = reqwest::Client::new();
    let models_url = format!("{}/v1/models", server.base);
    let (_, models) = decode(client.get(&models_url).send().await.unwrap()).await;
    for model in ["shallow", "bert4rec"] {
        let entry = models
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model"] == model && m["backend"] == "musicnn")
            .unwrap_or_else(|| panic!("no {model}/musicnn in {models}"));
        assert!(
            ["training", "ready"].contains(&entry["state"].as_str().unwrap()),
            "{entry}"
        );
    }
    let tracks = first_tracks(&data, 3);
    let recommend = |model: &str| {
        let body = json!({"history": tracks, "model": model, "backend": "musicnn", "k": 5});
        client
            .post(format!("{}/v1/recommendations", server.base))
            .json(&body)
            .send()
    };
    // Asked while it trains: 503 with a Retry-After; or already the answer.
    let response = recommend("bert4rec").await.unwrap();
    let retry_after = response.headers().get("retry-after").cloned();
    let (status, body) = decode(response).await;
    match status {
        503 => {
            assert_eq!(body["type"], "/problems/not-ready", "{body}");
            assert!(retry_after.is_some(), "503 without Retry-After: {body}");
        }
        200 => {}
        other => panic!("{other}: {body}"),
    }
    wait_for(
        &client,
        &models_url,
        Duration::from_secs(600),
        |_, models| {
            let served = |model: &str| {
                models.as_array().unwrap().iter().any(|m| {
                    m["model"] == model && m["backend"] == "musicnn" && m["state"] == "ready"
                })
            };
            served("shallow") && served("bert4rec")
        },
    )
    .await;
    for model in ["shallow", "bert4rec"] {
        let (status, recs) = decode(recommend(model).await.unwrap()).await;
        assert_eq!(status, 200, "{recs}");
        assert_eq!(recs["model"], model);
        assert_eq!(recs["items"].as_array().unwrap().len(), 5);
        let saved = data.join(format!(".audiorec/models/{model}-musicnn.safetensors"));
        assert!(saved.is_file(), "{} not saved", saved.display());
    }
    assert!(server.log().contains("demo training started"));
    drop(server);

    // The next start loads both with the rest of its start-up and trains nothing.
    let again = Server::start_on(&data, &url, &["--demo-epochs", "1"]).await;
    let (_, ready) = get_json(&client, &format!("{}/ready", again.base)).await;
    let models = ready["models"].as_array().unwrap();
    for model in ["shallow", "bert4rec"] {
        assert!(
            models.contains(&json!(format!("{model}/musicnn"))),
            "{ready}"
        );
    }
    assert!(
        !again.log().contains("demo training started"),
        "{}",
        again.log()
    );
}

/// On an empty database the service listens before the dataset is imported: while the
/// import is held back (here by a lock on `plays`, from a transaction of the test's own),
/// `/ready` says it is importing, a route that needs the database answers 503 `not-ready`
/// with a `Retry-After`, and an anonymous recommendation is served from memory; once the
/// import can go on, every route opens. Postgres only (the lock is a Postgres one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_database_is_imported_after_the_service_listens() {
    use sqlx::Connection;
    if crate::helpers::postgres_available().is_none() {
        return;
    }
    let url = database_url(Db::Postgres).await;
    // The schema first (a start on an unreachable dataset folder would not get past it),
    // by opening the store once; then hold `plays` against inserts.
    audiorec::store::Store::connect(&url)
        .await
        .unwrap()
        .close()
        .await;
    let mut blocker = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("LOCK TABLE plays IN SHARE MODE")
        .execute(&mut blocker)
        .await
        .unwrap();

    let app = spawn_listening(&settings(url)).await;
    let ready_url = format!("{}/ready", app.address);
    let ready = wait_for(&app.client, &ready_url, Duration::from_secs(60), |_, r| {
        r["importing"] == true && r["backends"]["musicnn"] == "ready"
    })
    .await;
    assert_eq!(ready["status"], "starting", "{ready}");
    let response = app
        .client
        .post(format!("{}/v1/users", app.address))
        .json(&json!({"user_id": "early"}))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("retry-after"));
    let (status, problem) = decode(response).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (503, Some("/problems/not-ready")),
        "{problem}"
    );
    let tracks = crate::helpers::track_ids();
    let body = json!({"history": &tracks[..3], "backend": "musicnn", "k": 5});
    let (status, recs) = app.post("/v1/recommendations", &body).await;
    assert_eq!(status, 200, "{recs}");

    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
    let ready = wait_for(
        &app.client,
        &ready_url,
        Duration::from_secs(60),
        |status, _| status == 200,
    )
    .await;
    assert_eq!(
        (ready["importing"].clone(), ready["status"].clone()),
        (json!(false), json!("ready"))
    );
    let (status, user) = app.post("/v1/users", &json!({"user_id": "early"})).await;
    assert_eq!(status, 201, "{user}");
    let (status, listens) = app.get("/v1/users/user_000001/listens?limit=1").await;
    assert_eq!(status, 200, "the imported plays are there: {listens}");
}
