//! Progress of the grids this process is running, for the service's status endpoint: the
//! current cell, its epoch and batch, and an ETA. It lives in memory, beside the durable
//! record (finished cells are in the database); another replica asking about a grid it
//! does not run sees the cells done and which one is next, without the epoch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::GridObserver;
use super::plan::CellSpec;
use crate::eval::report::ModelKind;
use crate::model::checkpoint::EpochRecord;
use crate::train::fit::FitObserver;

/// Where a running grid is.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    /// Key of the cell being computed (`model/variant/backend`).
    pub cell: String,
    /// Its epoch (1-based) while training; `None` before training and for KNN.
    pub epoch: Option<usize>,
    /// Most epochs of the cell's model (training may stop early).
    pub epochs: Option<usize>,
    /// Batches done in the epoch, of `batches`.
    pub batch: usize,
    pub batches: usize,
    /// Seconds left for the whole grid: the estimate when the cell started (scaled by how
    /// measured cells compared with theirs) less the time since.
    pub eta_seconds: f64,
}

struct Entry {
    running: Running,
    eta_at_start: f64,
    started: Instant,
}

/// The running grids of this process, by experiment id.
#[derive(Clone, Default)]
pub struct Board(Arc<Mutex<HashMap<String, Entry>>>);

impl Board {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Entry>) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Where experiment `id` is, if this process runs it.
    pub fn get(&self, id: &str) -> Option<Running> {
        self.with(|m| {
            m.get(id).map(|e| Running {
                eta_seconds: (e.eta_at_start - e.started.elapsed().as_secs_f64()).max(0.0),
                ..e.running.clone()
            })
        })
    }

    /// The observer of experiment `id`'s grid; its entry goes when the observer does.
    pub fn observer(&self, id: &str, epochs: [usize; 2]) -> BoardObserver {
        BoardObserver {
            board: self.clone(),
            id: id.to_string(),
            epochs,
        }
    }
}

/// Records a grid's progress on the [`Board`] and logs it.
pub struct BoardObserver {
    board: Board,
    id: String,
    /// Most epochs of the Shallow Net and of BERT4Rec.
    epochs: [usize; 2],
}

impl Drop for BoardObserver {
    fn drop(&mut self) {
        self.board.with(|m| m.remove(&self.id));
    }
}

impl GridObserver for BoardObserver {
    fn cell_started(&self, index: usize, total: usize, cell: &CellSpec, eta: f64) {
        tracing::info!(experiment = %self.id, cell = %cell, index = index + 1, total, eta_seconds = eta.round(), "cell started");
        let epochs = match cell.model {
            ModelKind::Knn => None,
            ModelKind::Shallow => Some(self.epochs[0]),
            ModelKind::Bert4rec => Some(self.epochs[1]),
        };
        let entry = Entry {
            running: Running {
                cell: cell.key(),
                epoch: None,
                epochs,
                batch: 0,
                batches: 0,
                eta_seconds: eta,
            },
            eta_at_start: eta,
            started: Instant::now(),
        };
        self.board.with(|m| m.insert(self.id.clone(), entry));
    }

    fn cell_done(&self, _index: usize, cell: &CellSpec, seconds: f64, skipped: bool) {
        tracing::info!(experiment = %self.id, cell = %cell, seconds, skipped, "cell done");
    }

    fn trainer(&self, cell: &CellSpec) -> Box<dyn FitObserver + '_> {
        Box::new(Epochs {
            observer: self,
            cell: cell.to_string(),
        })
    }
}

/// A cell's training epochs on the board.
struct Epochs<'a> {
    observer: &'a BoardObserver,
    cell: String,
}

impl Epochs<'_> {
    fn update(&self, f: impl FnOnce(&mut Running)) {
        let o = self.observer;
        o.board.with(|m| {
            if let Some(e) = m.get_mut(&o.id) {
                f(&mut e.running);
            }
        });
    }
}

impl FitObserver for Epochs<'_> {
    fn epoch_started(&self, epoch: usize, batches: usize) {
        self.update(|r| {
            r.epoch = Some(epoch);
            r.batch = 0;
            r.batches = batches;
        });
    }

    fn batch_done(&self, _loss: f64) {
        self.update(|r| r.batch += 1);
    }

    fn epoch_done(&self, r: &EpochRecord) {
        tracing::info!(
            experiment = %self.observer.id,
            cell = %self.cell,
            epoch = r.epoch,
            train_loss = r.train_loss,
            validation_loss = r.validation_loss,
            seconds = r.seconds,
            "epoch done"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::report::Variant;

    #[test]
    fn the_board_follows_cells_and_epochs_and_forgets_a_finished_grid() {
        let board = Board::default();
        let observer = board.observer("e1", [3, 5]);
        let cell = CellSpec {
            model: ModelKind::Shallow,
            variant: Variant::Content,
            backend: "musicnn".into(),
        };
        assert_eq!(board.get("e1"), None);
        observer.cell_started(1, 4, &cell, 100.0);
        let trainer = observer.trainer(&cell);
        trainer.epoch_started(2, 10);
        trainer.batch_done(0.5);
        let running = board.get("e1").unwrap();
        assert_eq!(running.cell, "shallow/content/musicnn");
        assert_eq!((running.epoch, running.epochs), (Some(2), Some(3)));
        assert_eq!((running.batch, running.batches), (1, 10));
        assert!(running.eta_seconds <= 100.0 && running.eta_seconds > 99.0);
        drop(trainer);
        drop(observer);
        assert_eq!(board.get("e1"), None);
    }
}
