//! A Postgres cluster of a test's own (initdb in a temp dir, on a free port), stopped and
//! started by the test, so an outage test leaves every other test's database alone.
//! Postgres refuses to run as root: as root (CI) the cluster belongs to the `postgres`
//! user and its commands run through `runuser`.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

/// The newest `/usr/lib/postgresql/*/bin` with an `initdb`, if any.
fn postgres_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// A fresh, started cluster; `None` (with a note) where Postgres binaries are not
    /// installed, except under CI, which must have them.
    pub fn start() -> Option<Self> {
        let Some(bin) = postgres_bin() else {
            assert!(
                std::env::var("CI").is_err(),
                "CI must have /usr/lib/postgresql/*/bin/initdb"
            );
            eprintln!("no /usr/lib/postgresql/*/bin/initdb: skipping");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()));
        }
        let cluster = Self {
            dir,
            bin,
            port: free_port(),
            as_postgres,
        };
        let data = cluster.data();
        cluster.pg(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        cluster.start_again();
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the stopped cluster and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let data = self.data();
        let log = self.dir.path().join("postgres.log");
        self.pg(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    /// Stops the cluster at once (`-m fast`: open sessions are terminated).
    pub fn stop(&self) {
        let data = self.data();
        self.pg(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    fn pg(&self, tool: &str, args: &[&str]) {
        run(&mut self.pg_command(tool, args));
    }

    fn pg_command(&self, tool: &str, args: &[&str]) -> Command {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        // Run from a directory the postgres user may enter.
        command.args(args).current_dir(self.dir.path());
        command
    }
}

fn run(command: &mut Command) {
    let out = command.output().expect("run a Postgres tool");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        if Path::new(&data).join("postmaster.pid").exists() {
            let args = ["-D", data.to_str().unwrap(), "-m", "immediate", "stop"];
            let _ = self.pg_command("pg_ctl", &args).output();
        }
    }
}
