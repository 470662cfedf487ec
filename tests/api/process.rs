//! The real `audiorec serve` binary as a child process, for what an in-process server
//! cannot show: several replicas on one database, and a process killed with SIGKILL.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::free_port;
use crate::helpers::dataset_dir;

pub struct Server {
    child: Child,
    pub base: String,
    log: tempfile::NamedTempFile,
}

impl Server {
    /// Starts `audiorec serve` on `database_url` (with `extra` flags, no demo training)
    /// and waits until `/ready` answers 200.
    pub async fn start(database_url: &str, extra: &[&str]) -> Self {
        let flags = [&["--demo-training", "false"], extra].concat();
        Self::start_on(&dataset_dir(), database_url, &flags).await
    }

    /// Starts `audiorec serve --data data` on `database_url` with `extra` flags and waits
    /// until `/ready` answers 200.
    pub async fn start_on(data: &Path, database_url: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_audiorec"))
            .args(["serve", "--index", "exact", "--bind"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data")
            .arg(data)
            .args(extra)
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("reopen log"))
            .spawn()
            .expect("start audiorec serve");
        let mut server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let start = Instant::now();
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(format!("{}/ready", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("audiorec serve exited with {status}:\n{}", self.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "audiorec serve never became ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// SIGKILL: no shutdown code runs, as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit; returns how long the shutdown took.
    pub fn terminate(&mut self) -> Duration {
        let start = Instant::now();
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        start.elapsed()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
