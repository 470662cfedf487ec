//! Fetching the pretrained weights: `pip download --no-deps musicnn==0.1.0` brings the wheel
//! (a zip) by name from the Python package registry, and Python's own `zipfile` unpacks its
//! `musicnn/MSD_musicnn/` folder (the wheel's ISC licence covers the weights). pip needs
//! Python anyway, so unpacking with it adds no dependency to audiorec.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{MusicnnError, TensorBundle, prefix};

pub const WHEEL_REQUIREMENT: &str = "musicnn==0.1.0";
const MEMBER_PREFIX: &str = "musicnn/MSD_musicnn/";

/// Extracts the members under `musicnn/MSD_musicnn/` of the wheel argv[1] into argv[2].
const UNPACK: &str = r#"
import os, sys, zipfile
wheel, dest, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
count = 0
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if not name.startswith(prefix) or name.endswith("/"):
            continue
        rel = name[len(prefix):]
        if rel.startswith("/") or ".." in rel.split("/"):
            sys.exit("unsafe member name " + name)
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, "wb") as out:
            out.write(src.read())
        count += 1
print(count)
"#;

/// Downloads the musicnn wheel with `python -m pip` and unpacks MSD_musicnn into `dir`,
/// then checks that the checkpoint opens. Returns the number of files written.
pub fn fetch_weights(dir: &Path, python: &str) -> Result<usize, MusicnnError> {
    let staging = staging_dir(dir);
    std::fs::create_dir_all(&staging)
        .map_err(|e| setup_error(format!("cannot create {}: {e}", staging.display())))?;
    let result = download_and_unpack(dir, &staging, python);
    let _ = std::fs::remove_dir_all(&staging);
    let files = result?;
    TensorBundle::open(&prefix(dir)).map_err(|source| MusicnnError::Checkpoint {
        dir: dir.into(),
        source,
    })?;
    Ok(files)
}

fn download_and_unpack(dir: &Path, staging: &Path, python: &str) -> Result<usize, MusicnnError> {
    run(Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
        ])
        .arg("--dest")
        .arg(staging)
        .arg(WHEEL_REQUIREMENT))?;
    let wheel = std::fs::read_dir(staging)
        .map_err(|e| setup_error(format!("cannot list {}: {e}", staging.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| setup_error("pip downloaded no wheel".into()))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| setup_error(format!("cannot create {}: {e}", dir.display())))?;
    let out = run(Command::new(python)
        .args(["-c", UNPACK])
        .arg(&wheel)
        .arg(dir)
        .arg(MEMBER_PREFIX))?;
    out.trim()
        .parse()
        .map_err(|_| setup_error(format!("unexpected unpack output {out:?}")))
}

fn staging_dir(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_owned();
    name.push(".download");
    dir.with_file_name(name)
}

/// Runs a command, returning its stdout, or its stderr as the error.
fn run(cmd: &mut Command) -> Result<String, MusicnnError> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| setup_error(format!("cannot run {shown}: {e}")))?;
    if !out.status.success() {
        return Err(setup_error(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn setup_error(detail: String) -> MusicnnError {
    MusicnnError::Setup(detail)
}
