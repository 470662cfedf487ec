//! Where a served (model, backend) stands while the service runs: its index being built
//! or its checkpoint loaded, its net being trained, ready, or failed; and when it is
//! expected to be ready, which is what a client that asked too early is told to wait
//! (`Retry-After`).

use std::time::{Duration, Instant};

/// The state of one (model, backend) entry.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Its index is being built or its checkpoint loaded, or it waits for a core to do
    /// so; expected ready at `eta`.
    Building {
        eta: Instant,
    },
    /// Its net is being trained: epoch `epoch` (1-based; 0 while it waits its turn) of at
    /// most `epochs`, expected done at `eta` (an upper bound: early stopping may end it
    /// sooner), unknown until a first estimate exists.
    Training {
        epoch: usize,
        epochs: usize,
        eta: Option<Instant>,
    },
    Ready,
    /// It could not be built, loaded or trained; the reason is for people (the log has
    /// the same).
    Failed(String),
}

/// When a state whose estimate has run out says to come back: it is late, so soon.
const OVERDUE: Duration = Duration::from_secs(2);

/// When a training without an estimate yet says to come back.
const UNKNOWN: Duration = Duration::from_secs(30);

impl State {
    /// The state's name in the API: `building`, `training`, `ready` or `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            State::Building { .. } => "building",
            State::Training { .. } => "training",
            State::Ready => "ready",
            State::Failed(_) => "failed",
        }
    }

    /// Whether it is on its way to ready (building or training).
    pub fn is_pending(&self) -> bool {
        matches!(self, State::Building { .. } | State::Training { .. })
    }

    /// Whole seconds (at least 1) until a pending entry is expected ready, seen at `now`;
    /// `None` for ready and failed ones. A late estimate answers a couple of seconds.
    pub fn retry_after(&self, now: Instant) -> Option<u64> {
        let wait = match self {
            State::Building { eta } | State::Training { eta: Some(eta), .. } => {
                eta.checked_duration_since(now).unwrap_or(OVERDUE)
            }
            State::Training { eta: None, .. } => UNKNOWN,
            State::Ready | State::Failed(_) => return None,
        };
        Some(wait.as_secs_f64().ceil().max(1.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_counts_whole_seconds_up_and_never_says_zero() {
        let now = Instant::now();
        let building = State::Building {
            eta: now + Duration::from_millis(12_300),
        };
        assert_eq!(building.retry_after(now), Some(13));
        assert_eq!(building.retry_after(now + Duration::from_secs(60)), Some(2));
        let training = State::Training {
            epoch: 2,
            epochs: 5,
            eta: Some(now + Duration::from_millis(100)),
        };
        assert_eq!(training.retry_after(now), Some(1));
        let unknown = State::Training {
            epoch: 1,
            epochs: 5,
            eta: None,
        };
        assert_eq!(unknown.retry_after(now), Some(30));
        assert_eq!(State::Ready.retry_after(now), None);
        assert_eq!(State::Failed("x".into()).retry_after(now), None);
        assert!(building.is_pending() && !State::Ready.is_pending());
    }
}
