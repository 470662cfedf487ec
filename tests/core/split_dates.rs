//! A split with custom dates, saved by `audiorec split`, is what every later command uses
//! without repeating the dates: evaluate, train, recommend and experiment, through the
//! real binary.

use std::path::Path;
use std::process::Command;

fn audiorec(args: &[&str], db: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_audiorec"))
        .args(args)
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("GLIBC_TUNABLES", "glibc.malloc.mmap_max=0")
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "audiorec {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn every_command_uses_the_saved_split_dates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = dir.path().join("runs.db");
    let d = data.to_str().unwrap();
    audiorec(&["demo-data", "--scale", "tiny", "--out", d], &db);
    let split = audiorec(
        &[
            "split",
            "--data",
            d,
            "--keep-from",
            "2019-06-01",
            "--test-from",
            "2020-01-01",
        ],
        &db,
    );
    assert!(split.contains("split at 2020-01-01"), "{split}");
    assert!(split.contains("plays kept from 2019-06-01"), "{split}");
    let saved = json(&data.join(".audiorec/split.json"));
    let (keep_from, test_from) = (&saved["config"]["keep_from"], &saved["config"]["test_from"]);
    let validation_users = saved["counts"]["validation"]["users"].as_u64().unwrap();

    let report = dir.path().join("eval.json");
    let r = report.to_str().unwrap();
    audiorec(
        &["evaluate", "--data", d, "--backend", "musicnn", "--out", r],
        &db,
    );
    let e = json(&report);
    assert_eq!(&e["parameters"]["split"]["keep_from"], keep_from);
    assert_eq!(&e["parameters"]["split"]["test_from"], test_from);
    assert_eq!(e["parts"][0]["users"].as_u64(), Some(validation_users));

    let train = &[
        "train",
        "shallow",
        "--data",
        d,
        "--backend",
        "musicnn",
        "--epochs",
        "1",
    ];
    audiorec(train, &db);
    let ckpt = json(&data.join(".audiorec/models/shallow-musicnn.json"));
    assert_eq!(&ckpt["data"]["split"]["keep_from"], keep_from);
    assert_eq!(&ckpt["data"]["split"]["test_from"], test_from);

    let recs = dir.path().join("recs.tsv");
    let out = audiorec(
        &[
            "recommend",
            "--data",
            d,
            "--backend",
            "musicnn",
            "--model",
            "shallow",
            "--split",
            "test",
            "--out",
            recs.to_str().unwrap(),
        ],
        &db,
    );
    let test_users = saved["counts"]["test"]["users"].as_u64().unwrap();
    assert!(out.contains(&format!("for {test_users} users")), "{out}");

    let plan = audiorec(
        &[
            "experiment",
            "--data",
            d,
            "--backends",
            "musicnn",
            "--models",
            "knn",
        ],
        &db,
    );
    assert!(plan.contains("1 cells computed"), "{plan}");
    let header = std::fs::read_dir(data.join(".audiorec/experiments"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("report/grid.json");
    let manifest = &json(&header)["manifest"]["split"];
    assert!(
        manifest
            .as_str()
            .unwrap()
            .contains("plays kept from 2019-06-01"),
        "{manifest}"
    );
}
