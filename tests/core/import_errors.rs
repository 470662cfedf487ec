//! Every kind of bad input: a typed error naming the file and the line or row, and no
//! cache written (`TestDir::import_err` checks that `DIR/.audiorec/` does not exist).

use audiorec::dataset::{Dataset, ImportError, MissingTracks, PLAYS_FILE};
use audiorec::embeddings::manifest::{BackendInfo, Manifest};

use crate::helpers::{TestDir, assert_names, options};

const FAIL: MissingTracks = MissingTracks::Fail;

#[test]
fn the_valid_fixture_imports_and_caches() {
    let d = TestDir::valid();
    let ds = Dataset::import(&d.layout(), options(FAIL), &|_| {}).unwrap();
    assert_eq!(ds.interactions.len(), 3);
    assert!(d.layout().derived().join("plays.bin").is_file());
}

#[test]
fn plays_row_with_a_missing_column() {
    let d = TestDir::valid();
    let plays = d.write(
        PLAYS_FILE,
        "user_id\ttrack_id\ttimestamp\nu1\ta\t2019-03-01\nu1\tb\n",
    );
    let err = d.import_err(FAIL);
    assert!(
        matches!(
            err,
            ImportError::Columns {
                line: 3,
                expected: 3,
                found: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &plays, &["line 3", "expected 3 columns, found 2"]);
}

#[test]
fn plays_row_with_an_extra_column() {
    let d = TestDir::valid();
    let plays = d.write(
        PLAYS_FILE,
        "user_id\ttrack_id\ttimestamp\nu1\ta\t2019-03-01\textra\n",
    );
    let err = d.import_err(FAIL);
    assert!(
        matches!(
            err,
            ImportError::Columns {
                line: 2,
                found: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &plays, &["line 2", "found 4"]);
}

#[test]
fn plays_with_a_wrong_header() {
    let d = TestDir::valid();
    let plays = d.write(PLAYS_FILE, "user\ttrack\ttime\nu1\ta\t2019-03-01\n");
    let err = d.import_err(FAIL);
    assert!(matches!(err, ImportError::Header { .. }), "{err:?}");
    assert_names(&err, &plays, &["line 1", "user_id\\ttrack_id\\ttimestamp"]);
}

#[test]
fn unparsable_timestamps() {
    for bad in ["2019-02-30 10:00:00", "yesterday", "2019-03-01 10:61:00"] {
        let d = TestDir::valid();
        let plays = d.plays(&[
            ("u1", "a", "2019-03-01 10:00:00"),
            ("u1", "b", "2019-03-02 10:00:00"),
            ("u2", "c", bad),
        ]);
        let err = d.import_err(FAIL);
        assert!(
            matches!(&err, ImportError::Timestamp { line: 4, value, .. } if value == bad),
            "{err:?}"
        );
        assert_names(&err, &plays, &["line 4", bad]);
    }
}

#[test]
fn nan_in_an_npy_matrix_names_row_and_column() {
    let d = TestDir::valid();
    let npy = d.npy(
        "feat",
        3,
        4,
        |r, c| if (r, c) == (2, 1) { f32::NAN } else { 1.0 },
    );
    let err = d.import_err(FAIL);
    assert!(
        matches!(err, ImportError::NonFinite { row: 2, column: 1, value, .. } if value.is_nan()),
        "{err:?}"
    );
    assert_names(&err, &npy, &["row 2, column 1", "NaN"]);
}

#[test]
fn infinity_in_a_tsv_matrix_names_its_line() {
    let d = TestDir::valid();
    std::fs::remove_file(d.path("embeddings/feat.npy")).unwrap();
    let tsv = d.write(
        "embeddings/feat.tsv",
        "id\td0\td1\na\t1\t2\nb\t3\tinf\nc\t5\t6\n",
    );
    let err = d.import_err(FAIL);
    // Line 3 of the file, column 3 (the id is column 1).
    assert!(
        matches!(err, ImportError::NonFinite { row: 3, column: 3, value, .. } if value == f32::INFINITY),
        "{err:?}"
    );
    assert_names(&err, &tsv, &["row 3", "inf"]);
}

#[test]
fn tsv_rows_of_different_dimensions() {
    let d = TestDir::valid();
    std::fs::remove_file(d.path("embeddings/feat.npy")).unwrap();
    let tsv = d.write(
        "embeddings/feat.tsv",
        "id\td0\td1\td2\na\t1\t2\t3\nb\t3\t4\nc\t5\t6\t7\n",
    );
    let err = d.import_err(FAIL);
    assert!(
        matches!(
            err,
            ImportError::Dimension {
                row: 3,
                expected: 3,
                found: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &tsv, &["row 3", "dimension 2, expected 3"]);
}

#[test]
fn dimension_differs_from_the_datasets_manifest() {
    let d = TestDir::valid();
    let manifest = d.path("embeddings/manifest.json");
    let backends = [(
        "feat".to_string(),
        BackendInfo {
            dim: 8,
            description: "test".into(),
            extractor: None,
        },
    )]
    .into();
    Manifest::write(&manifest, &backends).unwrap();
    let err = d.import_err(FAIL);
    assert!(
        matches!(&err, ImportError::DeclaredDimension { declared: 8, found: 4, backend, .. } if backend == "feat"),
        "{err:?}"
    );
    let npy = d.path("embeddings/feat.npy");
    assert_names(&err, &npy, &["dimension 4", "declares 8"]);
    assert!(err.to_string().contains(&manifest.display().to_string()));
}

#[test]
fn without_a_manifest_the_papers_dimensions_apply() {
    let d = TestDir::valid();
    // A `musicnn` matrix must be 200-d (built-in manifest); an unlisted backend is free.
    let npy = d.npy("musicnn", 3, 4, |_, _| 1.0);
    let err = d.import_err(FAIL);
    assert!(
        matches!(
            err,
            ImportError::DeclaredDimension {
                declared: 200,
                found: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(
        &err,
        &npy,
        &["built-in embeddings/manifest.json", "declares 200"],
    );
}

#[test]
fn a_malformed_manifest_names_its_line() {
    let d = TestDir::valid();
    let manifest = d.write(
        "embeddings/manifest.json",
        "{\n  \"feat\": {\"dim\": \"four\"}\n}\n",
    );
    let err = d.import_err(FAIL);
    assert!(matches!(err, ImportError::Manifest { .. }), "{err:?}");
    assert_names(&err, &manifest, &["line 2"]);
}

#[test]
fn truncated_npy() {
    let d = TestDir::valid();
    let npy = d.path("embeddings/feat.npy");
    let bytes = std::fs::read(&npy).unwrap();
    std::fs::write(&npy, &bytes[..bytes.len() - 6]).unwrap();
    let err = d.import_err(FAIL);
    assert!(matches!(err, ImportError::Npy { .. }), "{err:?}");
    assert_names(&err, &npy, &["truncated", "needs 48 bytes, file holds 42"]);
}

#[test]
fn non_float32_npy() {
    let d = TestDir::valid();
    let npy = d.path("embeddings/feat.npy");
    // A float64 file as numpy writes it: the header says '<f8'.
    let mut header = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }".to_string();
    header.push_str(&" ".repeat(64 - (10 + header.len() + 1) % 64));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend((0..12).flat_map(|i| (i as f64).to_le_bytes()));
    std::fs::write(&npy, bytes).unwrap();
    let err = d.import_err(FAIL);
    assert!(matches!(err, ImportError::Npy { .. }), "{err:?}");
    assert_names(&err, &npy, &["`<f8`", "float32"]);
}

#[test]
fn npy_row_count_differs_from_the_id_list() {
    let d = TestDir::valid();
    let npy = d.npy("feat", 2, 4, |_, _| 1.0);
    let err = d.import_err(FAIL);
    assert!(
        matches!(
            err,
            ImportError::RowCount {
                rows: 2,
                ids: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &npy, &["2 rows", "trackid_sorted.csv has 3"]);
}

#[test]
fn duplicate_track_ids_in_the_id_list() {
    let d = TestDir::valid();
    let ids = d.write("trackid_sorted.csv", "idx,trackid\n0,a\n1,b\n2,a\n");
    let err = d.import_err(FAIL);
    assert!(
        matches!(&err, ImportError::DuplicateTrack { line: 4, id, .. } if id == "a"),
        "{err:?}"
    );
    assert_names(&err, &ids, &["line 4", "`a`"]);
}

#[test]
fn duplicate_track_ids_in_a_tsv_matrix() {
    let d = TestDir::valid();
    std::fs::remove_file(d.path("trackid_sorted.csv")).unwrap();
    std::fs::remove_file(d.path("embeddings/feat.npy")).unwrap();
    // Without an id list the TSV defines the catalog; `b` appears on lines 3 and 5.
    let tsv = d.write("embeddings/feat.tsv", "id\td0\nb\t1\na\t2\nc\t3\nb\t4\n");
    let err = d.import_err(FAIL);
    assert!(
        matches!(&err, ImportError::DuplicateTrack { line: 5, id, .. } if id == "b"),
        "{err:?}"
    );
    assert_names(&err, &tsv, &["line 5", "`b`"]);
}

#[test]
fn plays_of_tracks_without_embeddings_fail_or_are_skipped_and_counted() {
    let d = TestDir::valid();
    let plays = d.plays(&[
        ("u1", "a", "2019-03-01 10:00:00"),
        ("u1", "nope", "2019-03-02 10:00:00"),
        ("u2", "nope", "2019-03-03 10:00:00"),
        ("u2", "c", "2019-03-04 10:00:00"),
    ]);
    let err = d.import_err(FAIL);
    assert!(
        matches!(&err, ImportError::UnknownTrack { line: 3, track, .. } if track == "nope"),
        "{err:?}"
    );
    assert_names(&err, &plays, &["line 3", "`nope`"]);

    let ds = Dataset::import(&d.layout(), options(MissingTracks::Skip), &|_| {}).unwrap();
    assert_eq!(ds.stats.unknown_track, 2);
    assert_eq!(ds.stats.rows, 4);
    assert_eq!(ds.interactions.len(), 2);
}

#[test]
fn a_failed_reimport_keeps_no_stale_cache_in_use() {
    // Import once (cache written), then break the plays: a fresh import fails, and
    // `open` does not silently serve the old cache for the changed file.
    let d = TestDir::valid();
    Dataset::import(&d.layout(), options(FAIL), &|_| {}).unwrap();
    d.write(
        PLAYS_FILE,
        "user_id\ttrack_id\ttimestamp\nu1\ta\tnot-a-date\n",
    );
    let err = Dataset::open(&d.layout(), options(FAIL)).unwrap_err();
    assert!(
        matches!(err, ImportError::Timestamp { line: 2, .. }),
        "{err:?}"
    );
}
