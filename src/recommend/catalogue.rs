//! The served catalogue: the imported tracks, and the tracks added and withdrawn through
//! the API since (stored in the database, replayed at start-up, polled by replicas).
//!
//! Imported tracks keep their indices `0..n`; added ones take `n, n+1, …` in the order
//! the database numbered their additions, so every replica gives a track the same index.
//! A withdrawn track keeps its index (histories may still name it) but no answer shows it
//! again; the next index build leaves it out.

use std::collections::HashSet;
use std::sync::RwLock;

use super::Scored;
use crate::io::Vocab;
pub use crate::store::{Change, Tag, TrackDetails};

/// The catalogue as served.
pub struct Catalogue {
    imported: Vocab,
    live: RwLock<Live>,
}

#[derive(Default)]
struct Live {
    /// Added track ids; index `i` here is catalogue index `imported + i`.
    added: Vocab,
    details: Vec<TrackDetails>,
    withdrawn: HashSet<u32>,
    /// The last change applied.
    seq: i64,
}

/// Why a change does not follow the catalogue as it is.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CatalogueError {
    #[error("change {got} arrived after change {applied}: changes apply in order")]
    OutOfOrder { got: i64, applied: i64 },
    #[error("track {id} was numbered {got}, but the next index is {want}")]
    Index { id: String, got: u32, want: u32 },
    #[error("track {0} is already in the catalogue")]
    Duplicate(String),
    #[error("no track with index {0}")]
    Unknown(u32),
}

impl Catalogue {
    pub fn new(imported: Vocab) -> Self {
        Self {
            imported,
            live: RwLock::default(),
        }
    }

    fn live(&self) -> std::sync::RwLockReadGuard<'_, Live> {
        self.live.read().expect("catalogue lock")
    }

    /// The index of a track id, withdrawn or not.
    pub fn get(&self, id: &str) -> Option<u32> {
        self.imported.get(id).or_else(|| {
            let n = self.imported.len() as u32;
            self.live().added.get(id).map(|i| n + i)
        })
    }

    /// The id of a catalogue index. Panics on an index the catalogue never issued.
    pub fn id(&self, index: u32) -> String {
        let n = self.imported.len() as u32;
        match index.checked_sub(n) {
            None => self.imported.id(index).to_string(),
            Some(i) => self.live().added.id(i).to_string(),
        }
    }

    /// Tracks ever in the catalogue, withdrawn ones included: indices are `0..len()`.
    pub fn len(&self) -> usize {
        self.imported.len() + self.live().added.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tracks imported with the dataset.
    pub fn imported(&self) -> &Vocab {
        &self.imported
    }

    /// Tracks served now: the catalogue less the withdrawn ones.
    pub fn served(&self) -> usize {
        self.len() - self.live().withdrawn.len()
    }

    /// Indices of the served tracks, in order.
    pub fn served_indices(&self) -> Vec<u32> {
        let live = self.live();
        (0..(self.imported.len() + live.added.len()) as u32)
            .filter(|t| !live.withdrawn.contains(t))
            .collect()
    }

    pub fn is_withdrawn(&self, index: u32) -> bool {
        self.live().withdrawn.contains(&index)
    }

    /// An added track's details; `None` for an imported one.
    pub fn details(&self, index: u32) -> Option<TrackDetails> {
        let i = index.checked_sub(self.imported.len() as u32)?;
        self.live().details.get(i as usize).cloned()
    }

    /// The last change applied (0 before any).
    pub fn seq(&self) -> i64 {
        self.live().seq
    }

    /// How many more tracks to ask a model for so that `k` remain once the withdrawn
    /// ones are dropped from its answer ([`Catalogue::visible`]).
    pub fn headroom(&self) -> usize {
        self.live().withdrawn.len()
    }

    /// A model's answer without withdrawn tracks, cut to `k`.
    pub fn visible(&self, mut list: Vec<Scored>, k: usize) -> Vec<Scored> {
        let live = self.live();
        if !live.withdrawn.is_empty() {
            list.retain(|s| !live.withdrawn.contains(&s.track));
        }
        list.truncate(k);
        list
    }

    /// Checks that `change` is the next one and applies its catalogue part. `before`
    /// runs under the catalogue's write lock once the change is known to apply (the
    /// registry puts the added rows into the backends there, so no reader sees a track
    /// without its rows). Changes already applied are skipped (`Ok(false)`).
    pub fn apply<E: From<CatalogueError>>(
        &self,
        change: &Change,
        before: impl FnOnce() -> Result<(), E>,
    ) -> Result<bool, E> {
        let mut live = self.live.write().expect("catalogue lock");
        if change.seq() <= live.seq {
            return Ok(false);
        }
        if change.seq() != live.seq + 1 {
            return Err(CatalogueError::OutOfOrder {
                got: change.seq(),
                applied: live.seq,
            }
            .into());
        }
        let len = (self.imported.len() + live.added.len()) as u32;
        match change {
            Change::Add {
                index,
                track_id,
                details,
                ..
            } => {
                if *index != len {
                    return Err(CatalogueError::Index {
                        id: track_id.clone(),
                        got: *index,
                        want: len,
                    }
                    .into());
                }
                if self.imported.get(track_id).is_some() || live.added.get(track_id).is_some() {
                    return Err(CatalogueError::Duplicate(track_id.clone()).into());
                }
                before()?;
                live.added.intern(track_id);
                live.details.push(details.clone());
            }
            Change::Withdraw { index, .. } => {
                if *index >= len {
                    return Err(CatalogueError::Unknown(*index).into());
                }
                before()?;
                live.withdrawn.insert(*index);
            }
        }
        live.seq = change.seq();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn add(seq: i64, index: u32, id: &str) -> Change {
        Change::Add {
            seq,
            index,
            track_id: id.into(),
            rows: BTreeMap::new(),
            details: TrackDetails::default(),
        }
    }

    fn apply(c: &Catalogue, change: &Change) -> Result<bool, CatalogueError> {
        c.apply(change, || Ok::<_, CatalogueError>(()))
    }

    /// Added tracks follow the imported ones; replays are skipped, gaps and clashes
    /// refused with nothing changed; a withdrawn track keeps its index but leaves answers.
    #[test]
    fn changes_apply_in_order_once() {
        let c = Catalogue::new(Vocab::from_ids(["a", "b"]).unwrap());
        assert_eq!(apply(&c, &add(1, 2, "new ✓")), Ok(true));
        assert_eq!(apply(&c, &add(1, 2, "new ✓")), Ok(false));
        assert_eq!(
            apply(&c, &add(3, 3, "x")),
            Err(CatalogueError::OutOfOrder { got: 3, applied: 1 })
        );
        assert!(matches!(
            apply(&c, &add(2, 9, "x")),
            Err(CatalogueError::Index {
                got: 9,
                want: 3,
                ..
            })
        ));
        assert_eq!(
            apply(&c, &add(2, 3, "a")),
            Err(CatalogueError::Duplicate("a".into()))
        );
        assert_eq!((c.len(), c.seq(), c.get("new ✓")), (3, 1, Some(2)));
        assert_eq!(c.id(2), "new ✓");
        let withdraw = Change::Withdraw { seq: 2, index: 0 };
        assert_eq!(apply(&c, &withdraw), Ok(true));
        assert!(c.is_withdrawn(0) && c.get("a") == Some(0));
        assert_eq!((c.served(), c.served_indices()), (2, vec![1, 2]));
        let answer = [0, 2, 1].map(|track| Scored { track, score: 1.0 }).to_vec();
        let shown: Vec<u32> = c.visible(answer, 1).iter().map(|s| s.track).collect();
        assert_eq!(shown, vec![2]);
        // A refused `before` leaves the catalogue as it was.
        let refused = c.apply(&add(3, 3, "y"), || Err(CatalogueError::Unknown(7)));
        assert_eq!(refused, Err(CatalogueError::Unknown(7)));
        assert_eq!((c.len(), c.seq()), (3, 2));
    }
}
