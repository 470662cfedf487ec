//! Learning-rate and stopping schedules driven by a validation loss, shared by the
//! neural recommenders (the paper trains both with ReduceLROnPlateau and early stopping).
//!
//! Both follow PyTorch's semantics (`ReduceLROnPlateau(mode="min", threshold=1e-4,
//! threshold_mode="rel")`), so runs can be compared with the authors' code: an epoch
//! improves when its loss is below `best * (1 - 1e-4)`. Both are plain serialisable state
//! so a resumed run continues where it stopped.

use serde::{Deserialize, Serialize};

/// Relative improvement an epoch needs to count as better (PyTorch's default threshold).
pub const THRESHOLD: f64 = 1e-4;

fn improves(loss: f64, best: Option<f64>) -> bool {
    match best {
        None => loss.is_finite(),
        Some(best) => loss < best * (1.0 - THRESHOLD),
    }
}

/// ReduceLROnPlateau: multiplies the learning rate by `factor` after `patience` epochs
/// without improvement, never going below `min_lr`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    pub factor: f64,
    pub patience: usize,
    pub min_lr: f64,
    best: Option<f64>,
    bad_epochs: usize,
}

impl Plateau {
    pub fn new(factor: f64, patience: usize, min_lr: f64) -> Self {
        Self {
            factor,
            patience,
            min_lr,
            best: None,
            bad_epochs: 0,
        }
    }

    /// Records an epoch's validation loss and returns the learning rate to use next.
    pub fn step(&mut self, loss: f64, lr: f64) -> f64 {
        if improves(loss, self.best) {
            self.best = Some(loss);
            self.bad_epochs = 0;
            return lr;
        }
        self.bad_epochs += 1;
        if self.bad_epochs > self.patience {
            self.bad_epochs = 0;
            return (lr * self.factor).max(self.min_lr);
        }
        lr
    }
}

/// What [`EarlyStopping::step`] decided about an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The best epoch so far: save a checkpoint.
    Improved,
    /// Not better, keep going.
    Wait,
    /// `patience` epochs in a row without improvement: stop.
    Stop,
}

/// Stops training after `patience` epochs without a better validation loss, and says
/// which epoch is the best so far (the one to checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    pub patience: usize,
    best: Option<f64>,
    bad_epochs: usize,
}

impl EarlyStopping {
    pub fn new(patience: usize) -> Self {
        Self {
            patience,
            best: None,
            bad_epochs: 0,
        }
    }

    /// The best loss seen so far.
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    pub fn step(&mut self, loss: f64) -> Verdict {
        if improves(loss, self.best) {
            self.best = Some(loss);
            self.bad_epochs = 0;
            return Verdict::Improved;
        }
        self.bad_epochs += 1;
        if self.bad_epochs >= self.patience {
            Verdict::Stop
        } else {
            Verdict::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plateau_cuts_the_rate_after_patience_bad_epochs() {
        let mut p = Plateau::new(0.1, 2, 1e-5);
        assert_eq!(p.step(1.0, 1e-3), 1e-3); // first: best
        assert_eq!(p.step(1.0, 1e-3), 1e-3); // bad 1 (equal is not better)
        assert_eq!(p.step(0.99995, 1e-3), 1e-3); // bad 2 (within the threshold)
        let lr = p.step(1.5, 1e-3); // bad 3 > patience: cut
        assert!((lr - 1e-4).abs() < 1e-12, "{lr}");
        assert_eq!(p.step(0.5, lr), lr); // improvement resets
        let mut lr = lr;
        for _ in 0..3 {
            lr = p.step(0.6, lr);
        }
        assert!((lr - 1e-5).abs() < 1e-12, "{lr}");
        for _ in 0..3 {
            lr = p.step(0.6, lr);
        }
        assert_eq!(lr, 1e-5, "never below min_lr");
    }

    #[test]
    fn early_stopping_stops_after_patience_and_tracks_the_best() {
        let mut e = EarlyStopping::new(3);
        assert_eq!(e.step(f64::NAN), Verdict::Wait, "a NaN loss is never best");
        assert_eq!(e.step(2.0), Verdict::Improved);
        assert_eq!(e.step(1.0), Verdict::Improved);
        assert_eq!(e.step(1.1), Verdict::Wait);
        assert_eq!(e.step(0.9), Verdict::Improved);
        assert_eq!(e.step(0.95), Verdict::Wait);
        assert_eq!(e.step(0.95), Verdict::Wait);
        assert_eq!(e.step(0.9), Verdict::Stop);
        assert_eq!(e.best(), Some(0.9));
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut e = EarlyStopping::new(4);
        e.step(1.0);
        e.step(1.2);
        let back: EarlyStopping =
            serde_json::from_str(&serde_json::to_string(&e).unwrap()).expect("deserialises");
        assert_eq!(back, e);
    }
}
