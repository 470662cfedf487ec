//! The layers of `src/`, checked from the code itself: every top-level module may use only
//! modules on lower floors (so there are no import circles between them), and nothing that
//! serves — `recommend`, `api`, `eval`, `store`, `index` — uses `train`.
//!
//! What counts as a use is every `crate::<module>` path outside comments. Run
//! `cargo test --test core architecture` after moving code; the failure names the file
//! and the line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Floors, lowest first. A module may use any module on a lower floor.
const FLOORS: &[&[&str]] = &[
    &["io", "simd", "bounded"],
    &["embeddings", "audio"],
    &["dataset", "index"],
    &["model", "store"],
    &["recommend"],
    &["train", "eval", "config"],
    &["experiment"],
    &["jobs"],
    &["api"],
];

/// Modules that serve requests or evaluate what is served: they never reach training.
const SERVING: &[&str] = &["recommend", "api", "eval", "store", "index"];

fn floor(module: &str) -> Option<usize> {
    FLOORS.iter().position(|f| f.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(line number, used module)` for every `crate::<module>` outside comments.
fn uses(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let tail = &rest[at + "crate::".len()..];
            let name: String = tail
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((i + 1, name));
            }
            rest = tail;
        }
    }
    out
}

#[test]
fn modules_use_only_lower_floors_and_serving_never_uses_training() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if ["lib", "main", "cli", "process"].contains(&module.as_str()) {
            continue; // the crate root and the binary's edge sit above every floor
        }
        let Some(own) = floor(&module) else {
            violations.push(format!(
                "{}: module `{module}` has no floor in FLOORS",
                rel.display()
            ));
            continue;
        };
        *seen.entry(module.clone()).or_default() += 1;
        let text = std::fs::read_to_string(file).unwrap();
        for (line, used) in uses(&text) {
            if used == module {
                continue;
            }
            let at = rel.display();
            match floor(&used) {
                None => violations.push(format!("{at}:{line}: uses `{used}`, which has no floor")),
                Some(f) if f >= own => violations.push(format!(
                    "{at}:{line}: `{module}` (floor {own}) uses `{used}` (floor {f})"
                )),
                Some(_) => {}
            }
            if used == "train" && SERVING.contains(&module.as_str()) {
                violations.push(format!(
                    "{at}:{line}: serving module `{module}` uses `train`"
                ));
            }
        }
    }
    assert!(seen.len() >= 10, "too few modules found: {seen:?}");
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_use_scanner_sees_paths_and_skips_comments() {
    let text = "use crate::model::x;\n// crate::train is mentioned\nlet a = crate::io::f(); // crate::api\n";
    assert_eq!(
        uses(text),
        vec![(1, "model".to_string()), (3, "io".to_string())]
    );
}
