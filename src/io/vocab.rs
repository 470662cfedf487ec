//! Dense indices for string identifiers.
//!
//! Every matrix, index and model works on `u32` rows; identifiers from files and the API
//! are strings. A [`Vocab`] is the one place where the two meet, so the mapping is
//! defined once and shared by tracks and users.

use rustc_hash::FxHashMap;

/// A bijection between string ids and dense indices `0..len`, in insertion order.
#[derive(Debug, Clone, Default)]
pub struct Vocab {
    ids: Vec<Box<str>>,
    index: FxHashMap<Box<str>, u32>,
}

impl Vocab {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a vocabulary from ids in order; returns the first duplicate as an error.
    pub fn from_ids<I, S>(ids: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut vocab = Self::new();
        for id in ids {
            let id = id.as_ref();
            if vocab.get(id).is_some() {
                return Err(id.to_string());
            }
            vocab.intern(id);
        }
        Ok(vocab)
    }

    /// The index of `id`, adding it if it is new.
    pub fn intern(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.ids.len() as u32;
        let boxed: Box<str> = id.into();
        self.ids.push(boxed.clone());
        self.index.insert(boxed, i);
        i
    }

    pub fn get(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The id at `index`. Panics on an index that this vocabulary never issued.
    pub fn id(&self, index: u32) -> &str {
        &self.ids[index as usize]
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn ids(&self) -> impl ExactSizeIterator<Item = &str> {
        self.ids.iter().map(|s| &**s)
    }
}
