//! Load benchmark of the HTTP service on `paper` demo data with its 1024-d backend:
//! throughput and p50/p99 latency of KNN recommendations for stored users, against
//! `/health` measured in the same run, then listen ingestion in batches.
//!
//! Two ways to load: *closed loop* (each connection sends its next request when the last
//! answer arrives) measures the most the service can do; *open loop at a fixed rate*
//! (requests scheduled every 1/rate seconds over the connections, latency counted from the
//! scheduled time, as wrk2 does, so a stall is not hidden) measures the latency a client
//! sees at that load. A closed loop of 64 connections cannot show both targets at once:
//! by Little's law its mean latency is 64 / throughput, 32 ms at 2,000 req/s.
//!
//! Recommendations are measured cold, then warm: the first closed loop asks each stored
//! user once (about one pass over the 17,000), so nothing of them is in the service's
//! memory yet; the phases after it ask the same users again, as a frontend does on every
//! page view, and the service answers from the histories and user vectors it kept (see
//! `AUDIOREC_REMEMBERED_USERS`).
//!
//! The server and this load generator share the machine (2 cores here): the figures are
//! a lower bound on what the server does alone. Run with `cargo bench --bench api_load`.
//!
//! `AUDIOREC_BENCH_REPLICAS=1 cargo bench --bench api_load` instead measures one against
//! two replicas on a Postgres cluster of the bench's own, then the same service while that
//! Postgres is stopped (see `replicas.rs`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use audiorec::api::startup::Application;
use audiorec::config::Settings;
use audiorec::dataset::demo::{self, Scale};
use audiorec::dataset::{Dataset, ImportOptions, Layout, MissingTracks};
use audiorec::index::{HnswParams, IndexKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Concurrent connections.
const CONNECTIONS: usize = 64;
/// Length of each measured phase.
const PHASE: Duration = Duration::from_secs(10);
/// The 1024-d backend of the paper-shaped demo data.
const BACKEND: &str = "mert";
const K: usize = 50;
/// Listens per ingestion request.
const LISTEN_BATCH: usize = 1_000;
/// The target rate for recommendations, offered in the open-loop phase.
const TARGET_RATE: f64 = 2_000.0;

struct Phase {
    requests: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
}

impl Phase {
    fn print(&self, name: &str) {
        println!(
            "{name:<28} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} requests, {} errors)",
            self.requests as f64 / self.seconds,
            self.p50_ms,
            self.p99_ms,
            self.requests,
            self.errors
        );
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// Runs `CONNECTIONS` loops issuing `request(i)` until `PHASE` has passed: closed loop
/// when `rate` is `None`, else request `i` is due at `i / rate` seconds (on connection
/// `i mod CONNECTIONS`) and its latency counts from then.
async fn phase<F, Fut>(rate: Option<f64>, request: F) -> Phase
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    phase_for(PHASE, rate, request).await
}

async fn phase_for<F, Fut>(length: Duration, rate: Option<f64>, request: F) -> Phase
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let counter = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|connection| {
            let (request, counter) = (request.clone(), counter.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                let mut next = connection;
                loop {
                    let (i, due) = match rate {
                        None => (counter.fetch_add(1, Ordering::Relaxed), Instant::now()),
                        Some(r) => {
                            let i = next;
                            next += CONNECTIONS;
                            let due = started + Duration::from_secs_f64(i as f64 / r);
                            tokio::time::sleep_until(due.into()).await;
                            (i, due)
                        }
                    };
                    if due.duration_since(started) >= length {
                        break;
                    }
                    if !request(i).await {
                        errors += 1;
                    }
                    latencies.push(due.elapsed().as_secs_f64() * 1e3);
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("load task");
        all.extend(l);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Phase {
        requests: all.len(),
        seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
    }
}

#[path = "api_load/replicas.rs"]
mod replicas;

/// The service's settings for the bench: `BACKEND` only, HNSW, no API key.
fn settings(database_url: String, data: PathBuf) -> Settings {
    Settings {
        bind: "127.0.0.1:0".parse().expect("an address"),
        database_url,
        data,
        demo_scale: Scale::Paper,
        backends: vec![BACKEND.into()],
        cors_origins: Vec::new(),
        index: IndexKind::Hnsw,
        ef_search: HnswParams::default().ef_search,
        search_dim: HnswParams::default().search_dim,
        experiment_budget: 0,
        demo_training: false,
        ..Settings::from_env()
    }
}

fn main() -> anyhow::Result<()> {
    if std::env::var_os("AUDIOREC_BENCH_REPLICAS").is_some() {
        return replicas::run();
    }
    let data =
        PathBuf::from(std::env::var("AUDIOREC_BENCH_DATA").unwrap_or_else(|_| "/tmp/paper".into()));
    if !data.exists() {
        println!("generating paper-scale demo data in {} ...", data.display());
        demo::generate(&data, Scale::Paper, 7)?;
    }
    let options = ImportOptions {
        keep_from: i64::MIN,
        missing_tracks: MissingTracks::Skip,
    };
    let dataset = Dataset::open(&Layout::new(&data), options)?;
    let users: Vec<String> = dataset
        .interactions
        .users
        .ids()
        .map(str::to_string)
        .collect();
    let tracks: Vec<String> = dataset.tracks.ids().map(str::to_string).collect();
    drop(dataset);

    let database = std::env::var("AUDIOREC_BENCH_DATABASE")
        .unwrap_or_else(|_| format!("sqlite://{}", data.join("bench.db").display()));
    let settings = settings(database.clone(), data.clone());
    let started = Instant::now();
    // The server gets a runtime of its own, as in production: sharing the load
    // generator's would let one delay the other's timers and count that as latency.
    let server = tokio::runtime::Runtime::new()?;
    let app = server.block_on(Application::build(&settings))?;
    let listening = started.elapsed().as_secs_f64();
    app.loader().registry().wait_started();
    println!(
        "service listening after {listening:.1} s, ready in {:.1} s ({} users, {} tracks, backend {BACKEND}, database {database})",
        started.elapsed().as_secs_f64(),
        users.len(),
        tracks.len()
    );
    let base = format!("http://{}", app.address());
    server.spawn(app.run_until(std::future::pending()));
    tokio::runtime::Runtime::new()?.block_on(load(base, users, tracks))
}

/// The measured phases, run from the load generator's runtime against `base`.
async fn load(base: String, users: Vec<String>, tracks: Vec<String>) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()?;

    let (c, b) = (client.clone(), base.clone());
    let health = phase(None, move |_| {
        let (c, b) = (c.clone(), b.clone());
        async move {
            c.get(format!("{b}/health"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;

    let (c, b) = (client.clone(), base.clone());
    let users = Arc::new(users);
    let us = users.clone();
    let recommend = move |i: usize| {
        let (c, b) = (c.clone(), b.clone());
        let user = us[(i * 7919) % us.len()].clone();
        async move {
            let url =
                format!("{b}/v1/users/{user}/recommendations?model=knn&backend={BACKEND}&k={K}");
            match c.get(url).send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    };
    let recs = phase(None, recommend.clone()).await;
    let recs_warm = phase(None, recommend.clone()).await;
    let recs_at_rate = phase(Some(TARGET_RATE), recommend.clone()).await;
    // And at three quarters of what the closed loop reached: the latency of a service
    // run at a sane utilisation.
    let moderate = (0.75 * recs.requests as f64 / recs.seconds).round();
    let recs_moderate = phase(Some(moderate), recommend).await;

    // Ingestion: new users, each getting batches of random listens.
    let (c, b) = (client.clone(), base.clone());
    let tracks = Arc::new(tracks);
    let run_id = std::process::id();
    let ingest = phase(None, move |i| {
        let (c, b, tracks) = (c.clone(), b.clone(), tracks.clone());
        async move {
            let user = format!("bench-{run_id}-{i}");
            let created = c.post(format!("{b}/v1/users")).json(&serde_json::json!({"user_id": user})).send().await;
            if !created.is_ok_and(|r| r.status().is_success()) {
                return false;
            }
            let mut rng = StdRng::seed_from_u64(i as u64);
            let listens: Vec<_> = (0..LISTEN_BATCH)
                .map(|j| serde_json::json!({"track_id": tracks[rng.random_range(0..tracks.len())], "timestamp": 1_700_000_000 + j as i64}))
                .collect();
            let sent = c
                .post(format!("{b}/v1/users/{user}/listens"))
                .json(&serde_json::json!({"listens": listens}))
                .send()
                .await;
            sent.is_ok_and(|r| r.status().is_success())
        }
    })
    .await;

    println!(
        "\n{CONNECTIONS} connections, {} s per phase, loopback",
        PHASE.as_secs()
    );
    health.print("GET /health (baseline)");
    recs.print("GET recommendations, cold");
    recs_warm.print("GET recommendations, warm");
    recs_at_rate.print(&format!("  same, {TARGET_RATE:.0} req/s offered"));
    recs_moderate.print(&format!("  same, {moderate:.0} req/s offered"));
    println!(
        "{:<28} {:>9.0} listens/s  (batches of {LISTEN_BATCH}, one user created per batch)",
        "POST listens",
        ingest.requests as f64 * LISTEN_BATCH as f64 / ingest.seconds
    );
    let warm_rate = recs_warm.requests as f64 / recs_warm.seconds;
    println!(
        "\nrecommendations: {:.3} of /health's throughput; closed loop cold {:.0} req/s, warm {warm_rate:.0} req/s [target >= {TARGET_RATE:.0}: {}], p99 at {TARGET_RATE:.0} req/s offered {:.2} ms [target < 10 ms: {}]",
        warm_rate / (health.requests as f64 / health.seconds),
        recs.requests as f64 / recs.seconds,
        verdict(warm_rate >= TARGET_RATE),
        recs_at_rate.p99_ms,
        verdict(recs_at_rate.p99_ms < 10.0 && recs_at_rate.errors == 0)
    );
    Ok(())
}
