//! Upload of a 30-second clip to recommendable, against the real service over HTTP (tiny
//! demo data, embedded SQLite, exact index): `POST /v1/tracks` with the clip as multipart,
//! then the next `POST /v1/recommendations` for a history holding the previous upload must
//! rank the new track. Timed from sending the upload to that answer. The same bytes
//! embedded in-process (decode, MusiCNN and MFCC side by side, no HTTP nor database) are
//! the baseline in the same run, so the service's own share is visible.

use std::path::Path;
use std::time::{Duration, Instant};

use audiorec::api::startup::Application;
use audiorec::config::Settings;
use audiorec::dataset::demo::{self, Scale};
use audiorec::index::IndexKind;
use audiorec::model::content::AudioEmbedder;
use audiorec::model::musicnn::Musicnn;
use candle_core::Device;
use serde_json::{Value, json};

/// Uploads timed (each a distinct track id, the same audio).
const UPLOADS: usize = 8;

pub fn run(clip: &Path, weights: &Path) {
    let bytes = std::fs::read(clip).unwrap();
    let embedder = AudioEmbedder::new(
        Musicnn::load(weights, &Device::Cpu).unwrap(),
        "musicnn-audio".into(),
        "mfcc-audio".into(),
    );
    embedder.embed(&bytes, Some("wav")).unwrap(); // warm-up
    let mut alone: Vec<f64> = (0..UPLOADS)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(embedder.embed(&bytes, Some("wav")).unwrap());
            t.elapsed().as_secs_f64()
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut served = runtime.block_on(over_http(bytes));
    let (a, s) = (summary(&mut alone), summary(&mut served));
    println!("upload of a 30 s clip to recommendable, seconds (target < 1 s), {UPLOADS} uploads");
    println!("{:<34} {:>8} {:>8}", "", "median", "max");
    println!(
        "{:<34} {:>8.3} {:>8.3}",
        "embedding alone (in-process)", a.0, a.1
    );
    println!(
        "{:<34} {:>8.3} {:>8.3}",
        "upload to recommendable (HTTP)", s.0, s.1
    );
}

fn summary(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() - 1])
}

async fn over_http(bytes: Vec<u8>) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    demo::generate(&data, Scale::Tiny, 7).unwrap();
    let settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: format!("sqlite://{}", dir.path().join("bench.db").display()),
        data,
        demo_scale: Scale::Tiny,
        index: IndexKind::Exact,
        demo_training: false,
        ..Settings::from_env()
    };
    let app = Application::build(&settings).await.unwrap();
    let base = format!("http://{}", app.address());
    let registry = app.loader().registry().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    while registry.starting() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let client = reqwest::Client::new();
    let upload = |id: String| {
        let part = reqwest::multipart::Part::bytes(bytes.clone()).file_name("clip.wav");
        let form = reqwest::multipart::Form::new()
            .text("track_id", id)
            .part("audio", part);
        client
            .post(format!("{base}/v1/tracks"))
            .multipart(form)
            .send()
    };
    assert_eq!(upload("seed".into()).await.unwrap().status(), 201);
    let mut seconds = Vec::with_capacity(UPLOADS);
    for i in 0..UPLOADS {
        let id = format!("upload-{i}");
        let started = Instant::now();
        let r = upload(id.clone()).await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let body =
            json!({"history": ["seed"], "model": "knn", "backend": "musicnn-audio", "k": 1000});
        let recs: Value = client
            .post(format!("{base}/v1/recommendations"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seconds.push(started.elapsed().as_secs_f64());
        let ranked = recs["items"].as_array().unwrap();
        assert!(
            ranked.iter().any(|t| t["track_id"] == id.as_str()),
            "{id} not recommendable: {recs}"
        );
    }
    seconds
}
