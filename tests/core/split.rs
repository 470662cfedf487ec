//! The paper's split on a hand-made plays file, with every expectation worked out by hand.

use audiorec::dataset::split::{HeldOut, PartCounts};
use audiorec::dataset::{Dataset, Interactions, MissingTracks, Split, SplitConfig, Vocab};
use rustc_hash::FxHashMap;

use crate::helpers::{TestDir, options};

/// Catalog t1..t6 (indices 0..5). Test date 2020-02-20, keep-from 2019-02-20.
fn hand_made() -> (TestDir, Dataset) {
    let d = TestDir::new();
    d.track_ids(&["t1", "t2", "t3", "t4", "t5", "t6"]);
    d.npy("feat", 6, 2, |r, c| (r + c) as f32 + 1.0);
    d.plays(&[
        // u1: t1 first heard before keep-from (dropped), so t2 is u1's first train track.
        ("u1", "t1", "2019-01-10 12:00:00"),
        ("u1", "t2", "2019-03-01 12:00:00"),
        ("u1", "t1", "2019-05-01 12:00:00"),
        // t2 heard again after the test date: first listen is before, so train only.
        ("u1", "t2", "2020-03-01 12:00:00"),
        // New to u1 after the test date, and t3 is in train (through u2): held out.
        ("u1", "t3", "2020-03-05 12:00:00"),
        // t6 is never heard before the test date: a cold track, never held out.
        ("u1", "t6", "2020-03-06 12:00:00"),
        ("u2", "t3", "2019-06-01 12:00:00"),
        ("u2", "t1", "2020-03-02 12:00:00"),
        // u3's only early play is before keep-from: a cold user, never held out.
        ("u3", "t4", "2019-01-15 12:00:00"),
        ("u3", "t1", "2020-03-03 12:00:00"),
        // Boundaries: exactly keep-from is kept, one second before is not; exactly the
        // test date is held out.
        ("u4", "t5", "2019-02-19 23:59:59"),
        ("u4", "t5", "2019-02-20 00:00:00"),
        ("u4", "t2", "2020-02-20 00:00:00"),
    ]);
    let dataset = Dataset::import(&d.layout(), options(MissingTracks::Fail), &|_| {}).unwrap();
    (d, dataset)
}

#[test]
fn first_listen_rule_keep_from_and_cold_users_and_tracks() {
    let (_d, ds) = hand_made();
    let split = Split::new(&ds.interactions, ds.tracks.len(), SplitConfig::default());
    let user = |id: &str| ds.interactions.users.get(id).unwrap();
    let track = |id: &str| ds.tracks.get(id).unwrap();
    let tracks = |ids: &[&str]| ids.iter().map(|t| track(t)).collect::<Vec<_>>();

    assert_eq!(ds.stats.before_keep_from, 3);
    // Train tracks in first-listen order.
    assert_eq!(split.train[user("u1") as usize], tracks(&["t2", "t1"]));
    assert_eq!(split.train[user("u2") as usize], tracks(&["t3"]));
    assert_eq!(split.train[user("u4") as usize], tracks(&["t5"]));
    // u3's plays: the early one is dropped at import, the late one is the user's first.
    assert!(split.train[user("u3") as usize].is_empty());
    // t4 (only before keep-from) and t6 (only after the test date) are never recommended.
    assert_eq!(split.train_items, tracks(&["t1", "t2", "t3", "t5"]));

    // Held out: u1 -> t3 (not t2, first heard before; not t6, cold), u2 -> t1, u4 -> t2;
    // u3 is cold. Three candidate users, 50/50 -> round(1.5) = 2 validation, 1 test.
    let mut held: Vec<HeldOut> = split
        .validation
        .iter()
        .chain(&split.test)
        .cloned()
        .collect();
    held.sort_by_key(|h| ds.interactions.users.id(h.user).to_string());
    let held: Vec<(&str, Vec<u32>)> = held
        .iter()
        .map(|h| (ds.interactions.users.id(h.user), h.tracks.clone()))
        .collect();
    assert_eq!(
        held,
        [
            ("u1", tracks(&["t3"])),
            ("u2", tracks(&["t1"])),
            ("u4", tracks(&["t2"])),
        ]
    );
    assert_eq!((split.validation.len(), split.test.len()), (2, 1));

    let c = split.counts;
    assert_eq!(
        c.train,
        PartCounts {
            users: 3,
            items: 4,
            interactions: 4
        }
    );
    assert_eq!(c.validation.interactions + c.test.interactions, 3, "{c:?}");
    assert_eq!(c.validation.users + c.test.users, 3);
}

#[test]
fn first_listen_timestamp_and_count_survive_import() {
    let (_d, ds) = hand_made();
    let it = &ds.interactions;
    let find = |u: &str, t: &str| {
        let (u, t) = (it.users.get(u).unwrap(), ds.tracks.get(t).unwrap());
        (0..it.len())
            .find(|&i| it.user[i] == u && it.track[i] == t)
            .map(|i| (it.first_ts[i], it.count[i]))
    };
    // u1/t2: two kept plays, first on 2019-03-01 12:00:00.
    assert_eq!(find("u1", "t2"), Some((1_551_441_600, 2)));
    // u1/t1: the 2019-01-10 play is dropped, so one play on 2019-05-01 12:00:00.
    assert_eq!(find("u1", "t1"), Some((1_556_712_000, 1)));
    assert_eq!(find("u4", "t5"), Some((1_550_620_800, 1)));
    assert_eq!(find("u3", "t4"), None);
}

/// `n` users, each with one train pair and one held-out pair: even users hear track 0
/// before the test date and track 1 after it, odd users the other way round (so both
/// tracks are in train and no held-out track is cold).
fn many_candidates(n: usize) -> Interactions {
    let mut users = Vocab::new();
    let mut agg = FxHashMap::default();
    let test_from = SplitConfig::default().test_from;
    for u in 0..n {
        let idx = users.intern(&format!("user{u:03}")) as u64;
        let (early, late) = if u % 2 == 0 { (0, 1) } else { (1, 0) };
        agg.insert((idx << 32) | early, (test_from - 1000, 1));
        agg.insert((idx << 32) | late, (test_from + 1000, 1));
    }
    Interactions::from_aggregates(users, agg)
}

#[test]
fn seeded_user_split_is_half_and_half_deterministic_and_seed_dependent() {
    let it = many_candidates(40);
    let with_seed = |seed| {
        let s = Split::new(
            &it,
            2,
            SplitConfig {
                seed,
                ..SplitConfig::default()
            },
        );
        let ids = |h: &[HeldOut]| h.iter().map(|h| h.user).collect::<Vec<_>>();
        (ids(&s.validation), ids(&s.test))
    };
    let (val, test) = with_seed(1);
    assert_eq!((val.len(), test.len()), (20, 20));
    let mut all: Vec<u32> = val.iter().chain(&test).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..40).collect::<Vec<u32>>(),
        "a partition of all users"
    );
    assert_eq!(with_seed(1), (val.clone(), test), "same seed, same split");
    let (other, _) = with_seed(2);
    assert_ne!(other, val, "another seed, another split");
}
