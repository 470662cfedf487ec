//! Rows of tracks added to the catalogue while it is served.
//!
//! The imported matrix stays one contiguous, immutable block (training reads it whole);
//! rows added later go to an append-only list beside it whose entries never move, so a
//! row borrowed by a search stays valid while another track is added. Every backend gets
//! one entry per added track, in catalogue order, holding its row or none: a track
//! uploaded as audio has rows only in the backends computed from audio, one posted with
//! ready rows only in the backends it names.

use super::{Embeddings, l2_normalize};

/// Why a row cannot join a backend.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RowError {
    #[error("backend `{backend}` has rows of {want} values, not {got}")]
    Dimension {
        backend: String,
        got: usize,
        want: usize,
    },
    #[error("value {column} of the `{backend}` row is {value}: rows must be finite")]
    NonFinite {
        backend: String,
        column: usize,
        value: f32,
    },
    #[error("the `{backend}` row is all zeros: it has no direction to compare by")]
    Zero { backend: String },
}

impl Embeddings {
    /// A backend computed in-process (from uploaded audio) over a catalogue of
    /// `catalogue` imported tracks: none of them has a row; added tracks will.
    pub fn content_only(backend: &str, dim: usize, catalogue: usize) -> Self {
        let mut e = Self::from_parts(backend, dim, Vec::new());
        e.first_added = catalogue;
        e
    }

    /// Checks a row for this backend before anything is stored.
    pub fn check_row(&self, row: &[f32]) -> Result<(), RowError> {
        let backend = self.backend.clone();
        if row.len() != self.dim {
            return Err(RowError::Dimension {
                backend,
                got: row.len(),
                want: self.dim,
            });
        }
        if let Some((column, &value)) = row.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(RowError::NonFinite {
                backend,
                column,
                value,
            });
        }
        if row.iter().all(|&v| v == 0.0) {
            return Err(RowError::Zero { backend });
        }
        Ok(())
    }

    /// Appends the next added track's row (or its absence) and returns its catalogue
    /// index. The catalogue calls this for every backend in the same order, so an index
    /// means the same track everywhere.
    pub fn push_added(&self, row: Option<&[f32]>) -> Result<u32, RowError> {
        let row = match row {
            Some(row) => {
                self.check_row(row)?;
                Some(row.into())
            }
            None => None,
        };
        Ok((self.first_added + self.added.push(row)) as u32)
    }

    /// Catalogue tracks this backend knows of: imported ones and every added one,
    /// with or without a row.
    pub fn tracks(&self) -> usize {
        self.first_added + self.added.count()
    }

    /// Whether `track` has a row here.
    pub fn has_row(&self, track: u32) -> bool {
        self.try_row(track).is_some()
    }

    /// The raw row of `track`, if it has one.
    pub fn try_row(&self, track: u32) -> Option<&[f32]> {
        match self.base(track) {
            Some(r) => Some(&self.raw[r]),
            None => self.added_row(track),
        }
    }

    /// The normalised row of `track`, if it has one (computed from the raw row: see the
    /// module doc of [`super`]).
    pub fn try_normalized_row(&self, track: u32) -> Option<Vec<f32>> {
        let mut row = self.try_row(track)?.to_vec();
        l2_normalize(&mut row);
        Some(row)
    }

    /// The added row of `track` (not an imported one).
    pub(super) fn added_row(&self, track: u32) -> Option<&[f32]> {
        let i = (track as usize).checked_sub(self.first_added)?;
        self.added.get(i)?.as_deref()
    }

    /// Tracks in `0..tracks()` that have a row, in order.
    pub fn tracks_with_rows(&self) -> Vec<u32> {
        let imported = 0..self.len() as u32;
        let added = self
            .added
            .iter()
            .filter(|(_, row)| row.is_some())
            .map(|(i, _)| (self.first_added + i) as u32);
        imported.chain(added).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Added rows sit after the imported ones, keep their index in every backend, are
    /// normalised like imported rows, and a refused row changes nothing.
    #[test]
    fn added_rows_follow_the_imported_ones() {
        let e = Embeddings::new("b", vec![3.0, 4.0, 0.0, 2.0], 2, Path::new("b.npy")).unwrap();
        let audio = Embeddings::content_only("a", 2, 2);
        assert_eq!(e.push_added(Some(&[0.0, -5.0])), Ok(2));
        assert_eq!(audio.push_added(None), Ok(2));
        assert_eq!(e.push_added(None), Ok(3));
        assert_eq!(audio.push_added(Some(&[1.0, 1.0])), Ok(3));
        assert_eq!(e.normalized_row(0), &[0.6, 0.8]);
        assert_eq!(e.row(2), &[0.0, -5.0]);
        assert_eq!(e.normalized_row(2), &[0.0, -1.0]);
        assert!(e.try_row(3).is_none() && !audio.has_row(0) && audio.has_row(3));
        assert_eq!(e.tracks_with_rows(), vec![0, 1, 2]);
        assert_eq!(audio.tracks_with_rows(), vec![3]);
        assert_eq!(
            (e.tracks(), e.len(), audio.tracks(), audio.len()),
            (4, 2, 4, 0)
        );
        assert!(matches!(
            e.push_added(Some(&[1.0])),
            Err(RowError::Dimension {
                got: 1,
                want: 2,
                ..
            })
        ));
        assert!(matches!(
            e.push_added(Some(&[f32::NAN, 1.0])),
            Err(RowError::NonFinite { column: 0, .. })
        ));
        assert!(matches!(
            e.push_added(Some(&[0.0, 0.0])),
            Err(RowError::Zero { .. })
        ));
        assert_eq!(e.tracks(), 4);
    }
}
