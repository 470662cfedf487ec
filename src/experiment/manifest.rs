//! What produced an experiment, in the words a reader of its report needs: embedding
//! files and their hashes, the split's dates and seed, every model flag (freeze modes
//! included), the crate version and git revision, and the machine.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::ExperimentConfig;
use crate::dataset::Split;
use crate::dataset::time::format_timestamp;
use crate::io::fnv::Fnv1a;

/// FNV-1a (64-bit) of a file's bytes, read in blocks: a fingerprint of an embedding file
/// that changes when any value does.
pub fn file_hash(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut h = Fnv1a::default();
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.write(&buf[..n]);
    }
    Ok(h.hex())
}

/// The git revision of the working directory, if it is a checkout.
fn git_revision() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// An embedding file as the manifest names it: `<file> (fnv1a-64 <hash>, <dim>-d)`.
pub fn embedding_entry(path: &Path, dim: usize) -> std::io::Result<String> {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into());
    Ok(format!("{name} (fnv1a-64 {}, {dim}-d)", file_hash(path)?))
}

/// The manifest of an experiment over `split`, with `embeddings` already described.
pub fn manifest(
    config: &ExperimentConfig,
    split: &Split,
    embeddings: &BTreeMap<String, String>,
    device: &str,
) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let c = split.config;
    m.insert(
        "split".into(),
        format!(
            "plays kept from {}, held out from {}, validation ratio {}, seed {}",
            format_timestamp(c.keep_from),
            format_timestamp(c.test_from),
            c.validation_ratio,
            c.seed
        ),
    );
    if split.has_cold() {
        m.insert(
            "cold start".into(),
            format!(
                "{} of the tracks in the plays held out of training ({} cold tracks, drawn with seed {}); hot and cold test results each rank their own tracks alone; shuffled controls ({:?}) permute a backend's rows with seed 0; the Random variants rank hot tracks only",
                c.cold_items,
                split.cold_items.len(),
                c.seed,
                config.shuffled_control
            ),
        );
    }
    for (backend, entry) in embeddings {
        m.insert(format!("embeddings: {backend}"), entry.clone());
    }
    let s = &config.shallow;
    m.insert(
        "shallow net".into(),
        format!(
            "max {} epochs, batch {}, 20 negative users ({:?}), margin 0.2, Adam 1e-3, freeze items {}, freeze users {}, seed {}",
            s.epochs, s.batch_size, s.negative_sampling, s.freeze_items, s.freeze_users, s.seed
        ),
    );
    let b = &config.bert4rec;
    m.insert(
        "bert4rec".into(),
        format!(
            "max {} epochs{}, batch {}, max length {}, 2 layers, 2 heads, intermediate 256, mask 0.2, items frozen (content), random hidden {}, seed {}",
            b.epochs,
            b.max_batches.map_or(String::new(), |n| format!(" of at most {n} batches")),
            b.batch_size,
            b.max_len,
            b.random_hidden,
            b.seed
        ),
    );
    m.insert(
        "knn".into(),
        format!(
            "exact scan; served index: HNSW with ef_search {}",
            config.ef_search
        ),
    );
    m.insert("k".into(), config.k.to_string());
    m.insert(
        "audiorec".into(),
        format!("{} (git {})", env!("CARGO_PKG_VERSION"), git_revision()),
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    m.insert(
        "machine".into(),
        format!(
            "{cores} cores, {}/{}, device {device}",
            std::env::consts::OS,
            std::env::consts::ARCH
        ),
    );
    m
}
