//! Shared fixtures: hand-made dataset folders in temp dirs and the small demo dataset.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use audiorec::dataset::demo::{self, Scale};
use audiorec::dataset::{
    Dataset, ImportError, ImportOptions, Layout, MissingTracks, PLAYS_FILE, TRACK_IDS_FILE,
};
use audiorec::embeddings::npy::write_f32_matrix;
use tempfile::TempDir;

/// The paper's keep-from date, 2019-02-20 00:00:00 UTC.
pub const KEEP_FROM: i64 = 1_550_620_800;

pub fn options(missing_tracks: MissingTracks) -> ImportOptions {
    ImportOptions {
        keep_from: KEEP_FROM,
        missing_tracks,
    }
}

/// A dataset folder written file by file, in a temp dir removed on drop.
pub struct TestDir {
    pub dir: TempDir,
}

impl TestDir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn layout(&self) -> Layout {
        Layout::new(self.root())
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// Writes `text` at `rel`, creating folders.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn track_ids(&self, ids: &[&str]) -> PathBuf {
        let mut text = String::from("idx,trackid\n");
        for (i, id) in ids.iter().enumerate() {
            text.push_str(&format!("{i},{id}\n"));
        }
        self.write(TRACK_IDS_FILE, &text)
    }

    /// Plays from `(user, track, timestamp)` rows, with the Onion header.
    pub fn plays(&self, rows: &[(&str, &str, &str)]) -> PathBuf {
        let mut text = String::from("user_id\ttrack_id\ttimestamp\n");
        for (u, t, ts) in rows {
            text.push_str(&format!("{u}\t{t}\t{ts}\n"));
        }
        self.write(PLAYS_FILE, &text)
    }

    /// `embeddings/<backend>.npy` of shape `[rows, cols]` filled with `f(row, col)`.
    pub fn npy(
        &self,
        backend: &str,
        rows: usize,
        cols: usize,
        f: impl Fn(usize, usize) -> f32,
    ) -> PathBuf {
        let data: Vec<f32> = (0..rows * cols).map(|i| f(i / cols, i % cols)).collect();
        let path = self.path(&format!("embeddings/{backend}.npy"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_f32_matrix(&path, &data, rows, cols).unwrap();
        path
    }

    /// A valid three-track dataset: catalog `a b c`, a 4-d `feat` backend, two users.
    pub fn valid() -> Self {
        let d = Self::new();
        d.track_ids(&["a", "b", "c"]);
        d.npy("feat", 3, 4, |r, c| (r * 4 + c) as f32 + 1.0);
        d.plays(&[
            ("u1", "a", "2019-03-01 10:00:00"),
            ("u1", "b", "2020-03-01 10:00:00"),
            ("u2", "c", "2019-04-01 10:00:00"),
        ]);
        d
    }

    /// Imports, expecting failure, and checks that nothing was cached.
    pub fn import_err(&self, missing: MissingTracks) -> ImportError {
        let err = Dataset::import(&self.layout(), options(missing), &|_| {})
            .expect_err("the import should fail");
        assert!(
            !self.layout().derived().exists(),
            "a failed import must not write {} (error: {err})",
            self.layout().derived().display()
        );
        err
    }
}

/// Asserts that an error message names `file` and contains each of `parts`.
pub fn assert_names(err: &ImportError, file: &Path, parts: &[&str]) {
    let msg = err.to_string();
    assert!(
        msg.contains(&file.display().to_string()),
        "`{msg}` does not name {}",
        file.display()
    );
    for p in parts {
        assert!(msg.contains(p), "`{msg}` does not contain `{p}`");
    }
}

/// The `small` demo dataset (2,000 users, 5,000 tracks, seed 7), generated once per test
/// process and imported with the paper's options.
pub fn small_demo() -> &'static Dataset {
    static DEMO: OnceLock<(TempDir, Dataset)> = OnceLock::new();
    let (_, dataset) = DEMO.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        demo::generate(dir.path(), Scale::Small, 7).expect("demo data");
        let dataset = Dataset::open(&Layout::new(dir.path()), options(MissingTracks::Fail))
            .expect("demo data imports");
        (dir, dataset)
    });
    dataset
}
