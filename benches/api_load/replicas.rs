//! One against two replicas on one Postgres (a cluster of the bench's own, so it can be
//! stopped), at `CONNECTIONS` connections, on `small` demo data: stored-user
//! recommendations (requests/s, p99) and listen ingestion (listens/s), with the load
//! spread over the replicas; then the same service with Postgres stopped: how fast the
//! requests that need it are answered 503, how anonymous histories fare, and how long
//! recovery takes once it is back.
//!
//! Each replica is a full service with a runtime of its own, as a process would be; they
//! share this machine's cores with each other and with the load generator, so two
//! replicas here show the cost of sharing the database, not the gain of a second machine.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use audiorec::api::startup::Application;
use audiorec::dataset::demo::{self, Scale};
use audiorec::dataset::{Dataset, ImportOptions, Layout, MissingTracks};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{BACKEND, CONNECTIONS, K, LISTEN_BATCH, Phase, phase_for, settings};

#[path = "../../tests/api/cluster.rs"]
#[allow(dead_code)]
mod cluster;

/// Length of each measured phase (short: this bench runs beside other work).
const PHASE: Duration = Duration::from_secs(5);
/// Length of the phases while Postgres is down.
const OUTAGE: Duration = Duration::from_secs(3);

/// A replica: a service on a runtime of its own.
struct Replica {
    base: String,
    _runtime: tokio::runtime::Runtime,
}

fn replica(database_url: &str, data: &std::path::Path) -> anyhow::Result<Replica> {
    let runtime = tokio::runtime::Runtime::new()?;
    let app = runtime.block_on(Application::build(&settings(
        database_url.into(),
        data.to_path_buf(),
    )))?;
    let base = format!("http://{}", app.address());
    // Listening; the index is built in the background: load starts once it is ready.
    app.loader().registry().wait_started();
    runtime.spawn(app.run_until(std::future::pending()));
    Ok(Replica {
        base,
        _runtime: runtime,
    })
}

pub fn run() -> anyhow::Result<()> {
    let data = PathBuf::from(
        std::env::var("AUDIOREC_BENCH_SMALL_DATA")
            .unwrap_or_else(|_| "/tmp/audiorec-bench-small".into()),
    );
    if !data.exists() {
        println!("generating small demo data in {} ...", data.display());
        demo::generate(&data, Scale::Small, 7)?;
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

    let Some(postgres) = cluster::Cluster::start() else {
        anyhow::bail!("no /usr/lib/postgresql/*/bin/initdb: the replica bench needs one");
    };
    let url = postgres.url("postgres");
    let started = Instant::now();
    let first = replica(&url, &data)?;
    println!(
        "first replica ready in {:.1} s (catalog imported into Postgres)",
        started.elapsed().as_secs_f64()
    );
    let load = tokio::runtime::Runtime::new()?;
    let users = Arc::new(users);
    let tracks = Arc::new(tracks);

    let one = load.block_on(measure(vec![first.base.clone()], &users, &tracks, "one"));
    let second = replica(&url, &data)?;
    let bases = vec![first.base.clone(), second.base.clone()];
    let two = load.block_on(measure(bases.clone(), &users, &tracks, "two"));

    println!(
        "\n{CONNECTIONS} connections, {} s per phase, loopback, Postgres",
        PHASE.as_secs()
    );
    for (name, (recs, ingest)) in [("1 replica", &one), ("2 replicas", &two)] {
        recs.print(&format!("{name}: GET recommendations"));
        println!(
            "{:<28} {:>9.0} listens/s  ({} batches of {LISTEN_BATCH}, {} errors)",
            format!("{name}: POST listens"),
            ingest.requests as f64 * LISTEN_BATCH as f64 / ingest.seconds,
            ingest.requests,
            ingest.errors
        );
    }
    println!(
        "two replicas / one: recommendations {:.2}x, listens {:.2}x",
        rate(&two.0) / rate(&one.0),
        rate(&two.1) / rate(&one.1)
    );

    // Postgres goes away under the service.
    postgres.stop();
    let down = Instant::now();
    let (stored, anonymous, recovery) = load.block_on(async {
        let client = reqwest::Client::new();
        // Until a replica notices, requests may wait on the pool: measure from the moment
        // both say they are not ready.
        for base in &bases {
            while client.get(format!("{base}/ready")).send().await?.status() == 200 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        println!(
            "\nPostgres stopped: both replicas not ready after {:.0} ms",
            down.elapsed().as_secs_f64() * 1e3
        );
        let stored = phase_for(OUTAGE, None, recommend(&client, &bases, &users, 503)).await;
        let anonymous = phase_for(OUTAGE, None, anonymous(&client, &bases, &tracks)).await;
        postgres.start_again();
        let back = Instant::now();
        for base in &bases {
            while client.get(format!("{base}/ready")).send().await?.status() != 200 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        anyhow::Ok((stored, anonymous, back.elapsed()))
    })?;
    stored.print("down: stored-user recs (503)");
    anonymous.print("down: anonymous recs (200)");
    println!(
        "recovered: both replicas ready {:.0} ms after Postgres accepted connections again",
        recovery.as_secs_f64() * 1e3
    );
    Ok(())
}

fn rate(p: &Phase) -> f64 {
    p.requests as f64 / p.seconds
}

/// Stored-user recommendations over `bases` in turn; success is answering `expect`.
fn recommend(
    client: &reqwest::Client,
    bases: &[String],
    users: &Arc<Vec<String>>,
    expect: u16,
) -> impl Fn(usize) -> futures::future::BoxFuture<'static, bool> + Send + Sync + 'static {
    let (c, bases, users) = (client.clone(), bases.to_vec(), users.clone());
    move |i| {
        let url = format!(
            "{}/v1/users/{}/recommendations?model=knn&backend={BACKEND}&k={K}",
            bases[i % bases.len()],
            users[(i * 7919) % users.len()]
        );
        let c = c.clone();
        Box::pin(async move {
            match c.get(url).send().await {
                Ok(r) => r.status().as_u16() == expect && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        })
    }
}

/// Anonymous-history recommendations (no database) over `bases` in turn.
fn anonymous(
    client: &reqwest::Client,
    bases: &[String],
    tracks: &Arc<Vec<String>>,
) -> impl Fn(usize) -> futures::future::BoxFuture<'static, bool> + Send + Sync + 'static {
    let (c, bases, tracks) = (client.clone(), bases.to_vec(), tracks.clone());
    move |i| {
        let mut rng = StdRng::seed_from_u64(i as u64);
        let history: Vec<&str> = (0..20)
            .map(|_| tracks[rng.random_range(0..tracks.len())].as_str())
            .collect();
        let body = serde_json::json!({"history": history, "backend": BACKEND, "k": K});
        let url = format!("{}/v1/recommendations", bases[i % bases.len()]);
        let c = c.clone();
        Box::pin(async move {
            c.post(url)
                .json(&body)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
    }
}

/// Warm stored-user recommendations, then listen ingestion, spread over `bases`.
async fn measure(
    bases: Vec<String>,
    users: &Arc<Vec<String>>,
    tracks: &Arc<Vec<String>>,
    label: &str,
) -> (Phase, Phase) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("client");
    // One pass first, so the measured phase is of returning users.
    phase_for(PHASE, None, recommend(&client, &bases, users, 200)).await;
    let recs = phase_for(PHASE, None, recommend(&client, &bases, users, 200)).await;
    let (c, tracks, label) = (client.clone(), tracks.clone(), label.to_string());
    let run = std::process::id();
    let ingest = phase_for(PHASE, None, move |i| {
        let (c, tracks) = (c.clone(), tracks.clone());
        let base = bases[i % bases.len()].clone();
        let user = format!("bench-{run}-{label}-{i}");
        async move {
            let created = c
                .post(format!("{base}/v1/users"))
                .json(&serde_json::json!({"user_id": user}))
                .send()
                .await;
            if !created.is_ok_and(|r| r.status().is_success()) {
                return false;
            }
            let mut rng = StdRng::seed_from_u64(i as u64);
            let listens: Vec<_> = (0..LISTEN_BATCH)
                .map(|j| serde_json::json!({"track_id": tracks[rng.random_range(0..tracks.len())], "timestamp": 1_700_000_000 + j as i64}))
                .collect();
            c.post(format!("{base}/v1/users/{user}/listens"))
                .json(&serde_json::json!({"listens": listens}))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    (recs, ingest)
}
