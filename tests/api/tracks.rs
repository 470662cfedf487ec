//! The live catalogue over HTTP: a track posted with its rows (or as audio) is in the
//! next answer of every content model, a withdrawn one never again, both survive a
//! restart and reach another replica; bad input is refused with nothing stored.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{
    Db, TestApp, assert_problem, database_url, decode, on_both_databases, spawn_app_on, track_ids,
};

/// The test's history: three catalogue tracks.
fn history() -> Vec<String> {
    track_ids().into_iter().take(3).collect()
}

/// The mean of the history's `musicnn` rows: KNN's user vector before normalisation,
/// and the Shallow Net's anonymous user input, so a track with this row is the best
/// answer of both (cosine 1).
fn user_mean(app: &TestApp) -> Vec<f32> {
    let musicnn = &app.registry.backends["musicnn"];
    let indices: Vec<u32> = history()
        .iter()
        .map(|id| app.registry.catalog.get(id).unwrap())
        .collect();
    musicnn.mean(&indices).unwrap()
}

async fn recommend(app: &TestApp, model: &str, backend: &str, history: &[String]) -> Value {
    let body = json!({"history": history, "model": model, "backend": backend, "k": 10});
    let (status, recs) = app.post("/v1/recommendations", &body).await;
    assert_eq!(status, 200, "{recs}");
    recs
}

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["track_id"].as_str().unwrap().to_string())
        .collect()
}

async fn delete(app: &TestApp, path: &str) -> u16 {
    let r = app
        .client
        .delete(format!("{}{path}", app.address))
        .send()
        .await
        .expect("request");
    r.status().as_u16()
}

/// Percent-encodes one path segment as the service's `Location` does.
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

on_both_databases!(
    posted_rows_join_every_answer_until_withdrawn_and_survive_a_restart,
    |db: Db| async move {
        let url = database_url(db).await;
        let app = spawn_app_on(url.clone(), |_| {}).await;
        let mean = user_mean(&app);
        let new_id = "new ✓ track/1";
        let (status, health) = app.get("/ready").await;
        assert_eq!(status, 200);
        let served_before = health["tracks"].as_u64().unwrap();

        let r = app
            .client
            .post(format!("{}/v1/tracks", app.address))
            .json(&json!({"track_id": new_id, "rows": {"musicnn": mean}}))
            .send()
            .await
            .unwrap();
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let (status, track) = decode(r).await;
        assert_eq!(status, 201, "{track}");
        assert_eq!(location, format!("/v1/tracks/{}", segment(new_id)));
        assert_eq!(track["added"]["source"], "rows");
        assert_eq!(track["backends"], json!([{"name": "musicnn", "dim": 200}]));
        let (_, shown) = app.get(&location).await;
        assert_eq!(shown["track_id"], new_id);

        // The next answers: first for KNN and the Shallow Net (cosine 1), and in
        // "similar tracks" of a history track.
        for model in ["knn", "shallow"] {
            let recs = recommend(&app, model, "musicnn", &history()).await;
            assert_eq!(ids(&recs)[0], new_id, "{model}: {recs}");
            let score = recs["items"][0]["score"].as_f64().unwrap();
            assert!((score - 1.0).abs() < 1e-4, "{model}: cosine {score}");
        }
        let similar = format!("/v1/tracks/{}/similar?backend=musicnn&k=1000", history()[0]);
        let (_, near) = app.get(&similar).await;
        assert!(ids(&near).contains(&new_id.to_string()), "{near}");
        let (_, health) = app.get("/ready").await;
        assert_eq!(health["tracks"].as_u64().unwrap(), served_before + 1);
        // Another backend has no row for it: not recommended there.
        let mert = recommend(&app, "knn", "mert", &history()).await;
        assert!(!ids(&mert).contains(&new_id.to_string()));

        // A user may listen to it, and is recommended from it.
        let (status, _) = app.post("/v1/users", &json!({"user_id": "ana"})).await;
        assert_eq!(status, 201);
        let listens = json!({"listens": [{"track_id": new_id, "timestamp": 5}]});
        let (status, body) = app.post("/v1/users/ana/listens", &listens).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = app
            .get("/v1/users/ana/recommendations?backend=musicnn&k=5")
            .await;
        assert_eq!(
            (status, body["items"].as_array().unwrap().len()),
            (200, 5),
            "{body}"
        );
        let elsewhere = app.get("/v1/users/ana/recommendations?backend=mert").await;
        assert_problem(&elsewhere, 409, "no-usable-listens");

        // A second track, kept; the first withdrawn: gone from every answer.
        let kept = json!({"track_id": "kept", "rows": {"musicnn": mean}});
        assert_eq!(app.post("/v1/tracks", &kept).await.0, 201);
        assert_eq!(delete(&app, &location).await, 204);
        assert_eq!(
            delete(&app, &location).await,
            204,
            "withdrawing twice is fine"
        );
        for model in ["knn", "shallow"] {
            let recs = ids(&recommend(&app, model, "musicnn", &history()).await);
            assert!(!recs.contains(&new_id.to_string()), "{model}: {recs:?}");
            assert_eq!(recs[0], "kept", "{model}");
            assert_eq!(recs.len(), 10, "{model}: still k answers");
        }
        let (_, near) = app.get(&similar).await;
        assert!(!ids(&near).contains(&new_id.to_string()));
        assert_problem(&app.get(&location).await, 410, "withdrawn-track");
        let gone_similar = format!("{location}/similar?backend=musicnn");
        assert_problem(&app.get(&gone_similar).await, 410, "withdrawn-track");

        // A restart on the same database replays both changes before building.
        let again = spawn_app_on(url, |_| {}).await;
        assert_problem(&again.get(&location).await, 410, "withdrawn-track");
        let (_, kept) = again.get("/v1/tracks/kept").await;
        assert_eq!(
            kept["index"].as_u64(),
            track["index"].as_u64().map(|i| i + 1)
        );
        let recs = ids(&recommend(&again, "knn", "musicnn", &history()).await);
        assert_eq!(recs[0], "kept");
        assert!(!recs.contains(&new_id.to_string()));
        let (_, health) = again.get("/ready").await;
        assert_eq!(health["tracks"].as_u64().unwrap(), served_before + 1);
    }
);

on_both_databases!(
    bad_tracks_are_refused_and_nothing_is_stored,
    |db: Db| async move {
        let app = spawn_app_on(database_url(db).await, |_| {}).await;
        let taken = track_ids()[0].clone();
        let row = |n: usize, v: f32| vec![v; n];
        let cases = [
            (
                json!({"track_id": "t", "rows": {"musicnn": row(199, 1.0)}}),
                422,
                "invalid-request",
            ),
            (
                json!({"track_id": "t", "rows": {"musicnn": row(200, 0.0)}}),
                422,
                "invalid-request",
            ),
            (
                json!({"track_id": "t", "rows": {"musicnn": vec![1e40; 200]}}),
                422,
                "invalid-request",
            ),
            (
                json!({"track_id": "t", "rows": {"nope": row(200, 1.0)}}),
                422,
                "invalid-request",
            ),
            (json!({"track_id": "t", "rows": {}}), 422, "invalid-request"),
            (
                json!({"track_id": "", "rows": {"musicnn": row(200, 1.0)}}),
                422,
                "invalid-request",
            ),
            (
                json!({"track_id": "t", "rows": {"musicnn": row(200, 1.0)}, "x": 1}),
                422,
                "invalid-request",
            ),
            (
                json!({"track_id": taken, "rows": {"musicnn": row(200, 1.0)}}),
                409,
                "conflict",
            ),
        ];
        for (body, status, slug) in cases {
            let answer = app.post("/v1/tracks", &body).await;
            assert_problem(&answer, status, slug);
        }
        let r = app
            .client
            .post(format!("{}/v1/tracks", app.address))
            .header("content-type", "text/plain")
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_problem(&decode(r).await, 415, "unsupported-media-type");
        assert_problem(&app.get("/v1/tracks/t").await, 404, "unknown-track");
        assert_eq!(delete(&app, "/v1/tracks/never-there").await, 404);
        assert_eq!(app.store.catalogue_changes(0).await.unwrap(), vec![]);
        assert_eq!(app.registry.catalog.seq(), 0);
    }
);

on_both_databases!(
    a_track_added_on_one_replica_is_served_by_the_other,
    |db: Db| async move {
        let url = database_url(db).await;
        let a = spawn_app_on(url.clone(), |_| {}).await;
        let b = spawn_app_on(url, |_| {}).await;
        let row = json!({"track_id": "from-a", "rows": {"musicnn": user_mean(&a)}});
        assert_eq!(a.post("/v1/tracks", &row).await.0, 201);
        let seen_on_b = wait_for(|| async {
            ids(&recommend(&b, "knn", "musicnn", &history()).await)
                .first()
                .cloned()
                == Some("from-a".into())
        })
        .await;
        assert!(seen_on_b, "replica b never served the track added on a");
        assert_eq!(delete(&b, "/v1/tracks/from-a").await, 204);
        let gone_on_a = wait_for(|| async {
            !ids(&recommend(&a, "knn", "musicnn", &history()).await).contains(&"from-a".to_string())
        })
        .await;
        assert!(gone_on_a, "replica a still serves the track withdrawn on b");
    }
);

/// Whether `check` holds within ten seconds (the apps poll every 100 ms).
async fn wait_for<F, Fut>(check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Audio in: two takes of one piece (16 kHz and 22.05 kHz) and a test tone are uploaded;
/// each is embedded by MusiCNN and MFCC and tagged, and a history of one take is answered
/// with the other take first (MusiCNN). A corrupt upload stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaded_audio_is_recommendable_in_the_next_answer() {
    if !crate::helpers::musicnn_weights("uploaded_audio_is_recommendable_in_the_next_answer") {
        return;
    }
    let app = spawn_app_on(database_url(Db::Sqlite).await, |s| s.body_limit = 8 << 20).await;
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio");
    // The oversized upload below goes on a connection of its own: the server closes it
    // after its early answer, and a pooled connection left mid-body would break the next
    // request instead.
    let own_connection = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let upload_with =
        |client: &reqwest::Client, id: &'static str, file: &'static str, bytes: Vec<u8>| {
            let form = reqwest::multipart::Form::new().text("track_id", id).part(
                "audio",
                reqwest::multipart::Part::bytes(bytes).file_name(file),
            );
            client
                .post(format!("{}/v1/tracks", app.address))
                .multipart(form)
                .send()
        };
    let upload = |id, file, bytes| upload_with(&app.client, id, file, bytes);
    let read = |file: &str| std::fs::read(fixtures.join(file)).unwrap();
    for (id, file) in [
        ("take-16k", "wesnoth_battle_16k.wav"),
        ("take-22k", "wesnoth_battle_22k.wav"),
        ("tone", "tone_stereo.flac"),
    ] {
        let (status, track) = decode(upload(id, file, read(file)).await.unwrap()).await;
        assert_eq!(status, 201, "{track}");
        let names: Vec<&str> = track["backends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["mfcc-audio", "musicnn-audio"]);
        assert_eq!(track["added"]["source"], "audio");
        assert_eq!(track["added"]["tags"].as_array().unwrap().len(), 5);
        assert!(track["added"]["duration_s"].as_f64().unwrap() >= 0.5);
    }
    // MusiCNN hears the two takes as one piece; MFCC statistics (band-limited at 8 kHz
    // in one take) need not, so there only the answer's members are asserted.
    let recs = recommend(&app, "knn", "musicnn-audio", &["take-16k".to_string()]).await;
    assert_eq!(ids(&recs), ["take-22k", "tone"]);
    let mut recs = ids(&recommend(&app, "knn", "mfcc-audio", &["take-16k".to_string()]).await);
    recs.sort();
    assert_eq!(recs, ["take-22k", "tone"]);
    let again = upload("tone", "tone_stereo.flac", read("tone_stereo.flac"));
    assert_problem(&decode(again.await.unwrap()).await, 409, "conflict");
    // Refused at the body limit: answered 413, or, when the server closes the connection
    // after its early answer while the client is still writing the rest of the body (as
    // HTTP/1.1 servers do with an unread body), a broken pipe on the client's side. Either
    // way nothing is stored (asserted below).
    match upload_with(&own_connection, "big", "big.wav", vec![0u8; 9 << 20]).await {
        Ok(oversized) => assert_problem(&decode(oversized).await, 413, "payload-too-large"),
        Err(e) => assert!(e.is_request(), "the upload failed otherwise: {e}"),
    }
    assert_problem(&app.get("/v1/tracks/big").await, 404, "unknown-track");
    let before = app.registry.catalog.len();
    let (status, problem) = decode(
        upload("broken", "broken.wav", b"RIFF\x10\0\0\0WAVEjunk".to_vec())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_problem(&app.get("/v1/tracks/broken").await, 404, "unknown-track");
    assert_eq!(app.registry.catalog.len(), before);
    assert_eq!(app.store.catalogue_changes(3).await.unwrap(), vec![]);
}
