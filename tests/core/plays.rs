//! The streaming plays import: aggregation into first listen and count per (user, track).

use audiorec::dataset::plays::read_plays;
use audiorec::dataset::time::parse_timestamp;
use audiorec::dataset::{ImportError, MissingTracks, PlayStats, Vocab};

use crate::helpers::{KEEP_FROM, TestDir};

fn ts(s: &str) -> i64 {
    parse_timestamp(s.as_bytes()).unwrap()
}

/// Rows out of order, a CRLF line, a blank line, a replay, a play before keep-from and a
/// track outside the catalog.
const PLAYS: &str = "user_id\ttrack_id\ttimestamp\n\
    u2\tb\t2019-06-01 12:00:00\n\
    u1\ta\t2019-05-01 08:00:00\n\
    u1\ta\t2019-03-01 09:30:00\r\n\
    \n\
    u1\ta\t2020-01-01 00:00:00\n\
    u1\tb\t2019-01-01 00:00:00\n\
    u2\tzz\t2019-07-01 00:00:00\n\
    u1\tb\t2019-02-20 00:00:00\n\
    u2\ta\t2019-04-01 00:00:00\n";

#[test]
fn aggregates_first_listen_and_count_per_pair() {
    let d = TestDir::new();
    let path = d.write("plays.tsv", PLAYS);
    let catalog = Vocab::from_ids(["a", "b"]).unwrap();
    let (it, stats) = read_plays(&path, &catalog, KEEP_FROM, MissingTracks::Skip, &|_| {}).unwrap();

    assert_eq!(
        stats,
        PlayStats {
            rows: 8,
            before_keep_from: 1,
            unknown_track: 1,
        }
    );
    // Users in order of first appearance: u2, u1.
    assert_eq!(it.users.ids().collect::<Vec<_>>(), ["u2", "u1"]);
    let rows: Vec<(&str, &str, i64, u32)> = (0..it.len())
        .map(|i| {
            (
                it.users.id(it.user[i]),
                catalog.id(it.track[i]),
                it.first_ts[i],
                it.count[i],
            )
        })
        .collect();
    // Sorted by user index, then first listen. u1/b's 2019-01-01 play is before keep-from,
    // so its first listen is the one at exactly keep-from, counted once.
    assert_eq!(
        rows,
        [
            ("u2", "a", ts("2019-04-01"), 1),
            ("u2", "b", ts("2019-06-01 12:00:00"), 1),
            ("u1", "b", ts("2019-02-20"), 1),
            ("u1", "a", ts("2019-03-01 09:30:00"), 3),
        ]
    );
}

#[test]
fn unknown_track_fails_on_its_line_when_asked_to() {
    let d = TestDir::new();
    let path = d.write("plays.tsv", PLAYS);
    let catalog = Vocab::from_ids(["a", "b"]).unwrap();
    let err = read_plays(&path, &catalog, KEEP_FROM, MissingTracks::Fail, &|_| {}).unwrap_err();
    // Header is line 1; the blank line counts: `zz` is on line 8.
    assert!(
        matches!(&err, ImportError::UnknownTrack { line: 8, track, .. } if track == "zz"),
        "{err:?}"
    );
    crate::helpers::assert_names(&err, &path, &["line 8", "`zz`", "--missing-tracks skip"]);
}

#[test]
fn keeping_nothing_is_an_error_not_an_empty_dataset() {
    let d = TestDir::new();
    let path = d.write(
        "plays.tsv",
        "user_id\ttrack_id\ttimestamp\nu1\ta\t2018-01-01 00:00:00\n",
    );
    let catalog = Vocab::from_ids(["a"]).unwrap();
    let err = read_plays(&path, &catalog, KEEP_FROM, MissingTracks::Skip, &|_| {}).unwrap_err();
    assert!(matches!(err, ImportError::Empty { .. }), "{err:?}");
    crate::helpers::assert_names(&err, &path, &["2019-02-20 00:00:00"]);
}
