//! Large evaluation runs are durable jobs: accepted (202) by a real server process, they
//! complete after that process is killed with SIGKILL, and with two processes on one
//! Postgres every job is claimed exactly once.

use std::time::{Duration, Instant};

use audiorec::store::{JobRecord, JobStatus, Store};
use serde_json::{Value, json};

use crate::helpers::{Db, database_url, decode, postgres_available, track_ids};
use crate::process::Server;

/// An evaluation of `users` inline histories, large enough to run for a while.
fn evaluation(users: usize) -> Value {
    let tracks = track_ids();
    let n = tracks.len();
    let users: Vec<Value> = (0..users)
        .map(|u| {
            let history: Vec<&str> = (0..12)
                .map(|j| tracks[(u * 7 + j * 13) % n].as_str())
                .collect();
            json!({"history": history, "held_out": [tracks[(u * 31 + 5) % n]]})
        })
        .collect();
    json!({"users": users, "k": 50})
}

async fn post(server: &Server, body: &Value) -> (u16, Value) {
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/v1/evaluations", server.base))
        .json(body)
        .send()
        .await
        .expect("request");
    decode(r).await
}

async fn wait_for_job(
    store: &Store,
    id: &str,
    what: &str,
    done: impl Fn(&JobRecord) -> bool,
) -> JobRecord {
    let start = Instant::now();
    loop {
        match store.get_job(id).await {
            Ok(Some(job)) if done(&job) => return job,
            Ok(_) => {}
            Err(e) => eprintln!("reading job {id}: {e}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "job {id} never {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run_status(store: &Store, id: &str) -> audiorec::store::RunStatus {
    store.get_run(id).await.unwrap().unwrap().status
}

/// Users of a run that takes a few seconds (debug build, tiny catalog): long enough to be
/// caught running.
const LARGE: usize = 3_000;

const FLAGS: &[&str] = &["--sync-eval-users", "0", "--body-limit", "33554432"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_evaluation_survives_a_killed_server() {
    let url = database_url(Db::Sqlite).await;
    let mut server = Server::start(&url, FLAGS).await;
    let (status, run) = post(&server, &evaluation(LARGE)).await;
    assert_eq!(status, 202, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    let store = Store::connect(&url).await.unwrap();
    wait_for_job(&store, &id, "started", |j| j.status == JobStatus::Running).await;
    server.kill();
    assert_eq!(
        run_status(&store, &id).await,
        audiorec::store::RunStatus::Pending,
        "killed before it finished"
    );

    let _again = Server::start(&url, FLAGS).await;
    let job = wait_for_job(&store, &id, "finished", |j| {
        matches!(j.status, JobStatus::Succeeded | JobStatus::Failed)
    })
    .await;
    assert_eq!(
        (job.status, job.attempts),
        (JobStatus::Succeeded, 2),
        "{job:?}"
    );
    let run = store.get_run(&id).await.unwrap().unwrap();
    assert_eq!(run.status, audiorec::store::RunStatus::Succeeded);
    assert_eq!(store.run_user_metrics(&id).await.unwrap().len(), LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_claim_each_job_once_and_take_over_a_killed_ones() {
    if postgres_available().is_none() {
        return;
    }
    let url = database_url(Db::Postgres).await;
    let flags = [FLAGS, &["--job-stale-after", "2"]].concat();
    let a = Server::start(&url, &flags).await;
    let b = Server::start(&url, &flags).await;
    let store = Store::connect(&url).await.unwrap();

    // Small runs posted to both: each is worked exactly once, by either process.
    let mut ids = Vec::new();
    for i in 0..8 {
        let server = if i % 2 == 0 { &a } else { &b };
        let (status, run) = post(server, &evaluation(300)).await;
        assert_eq!(status, 202, "{run}");
        ids.push(run["id"].as_str().unwrap().to_string());
    }
    let mut workers = std::collections::HashSet::new();
    for id in &ids {
        let job = wait_for_job(&store, id, "succeeded", |j| {
            j.status == JobStatus::Succeeded
        })
        .await;
        assert_eq!(job.attempts, 1, "claimed once: {job:?}");
        workers.insert(job.worker.unwrap().split('-').next().unwrap().to_string());
        assert_eq!(store.run_user_metrics(id).await.unwrap().len(), 300);
    }
    eprintln!("worked by processes {workers:?}");

    // A large run: kill whichever process holds it; the other one takes it over once
    // its heartbeat is stale.
    let (status, run) = post(&a, &evaluation(LARGE)).await;
    assert_eq!(status, 202);
    let id = run["id"].as_str().unwrap().to_string();
    let job = wait_for_job(&store, &id, "started", |j| j.status == JobStatus::Running).await;
    let holder: u32 = job
        .worker
        .unwrap()
        .split('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (mut dead, survivor) = if holder == a.pid() { (a, b) } else { (b, a) };
    assert_eq!(holder, dead.pid());
    dead.kill();
    let job = wait_for_job(&store, &id, "finished", |j| {
        matches!(j.status, JobStatus::Succeeded | JobStatus::Failed)
    })
    .await;
    assert_eq!(
        (job.status, job.attempts),
        (JobStatus::Succeeded, 2),
        "{job:?}"
    );
    let taker: u32 = job
        .worker
        .unwrap()
        .split('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(taker, survivor.pid());
    assert_eq!(store.run_user_metrics(&id).await.unwrap().len(), LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_hands_a_running_job_back_within_the_grace() {
    let url = database_url(Db::Sqlite).await;
    let flags = [FLAGS, &["--shutdown-grace", "1"]].concat();
    let mut server = Server::start(&url, &flags).await;
    let (status, run) = post(&server, &evaluation(LARGE)).await;
    assert_eq!(status, 202, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    let store = Store::connect(&url).await.unwrap();
    wait_for_job(&store, &id, "started", |j| j.status == JobStatus::Running).await;
    let took = server.terminate();
    let job = store.get_job(&id).await.unwrap().unwrap();
    if job.status == JobStatus::Succeeded {
        eprintln!("the run finished within the grace; nothing to hand back");
        return;
    }
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
    assert_eq!(
        (job.status, job.attempts),
        (JobStatus::Queued, 0),
        "{job:?}"
    );

    let _again = Server::start(&url, FLAGS).await;
    let job = wait_for_job(&store, &id, "finished", |j| {
        j.status == JobStatus::Succeeded
    })
    .await;
    assert_eq!(job.attempts, 1, "the handed-back attempt does not count");
}
