//! Training progress in a terminal: a bar per epoch (hidden when standard error is not a
//! terminal) and a line with the losses after each, the same for every net.

use std::time::Duration;

use audiorec::model::checkpoint::EpochRecord;
use audiorec::train::fit::FitObserver;
use indicatif::{ProgressBar, ProgressStyle};

/// A [`FitObserver`] that draws a bar of batches and prints each epoch's record.
pub struct Progress {
    bar: ProgressBar,
    label: String,
}

impl Progress {
    /// A bar whose lines start with `label` (the cell being trained).
    pub fn new(label: &str) -> Self {
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} batches {msg} [{elapsed}]")
                .expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(500));
        Self {
            bar,
            label: label.into(),
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl FitObserver for Progress {
    fn epoch_started(&self, epoch: usize, batches: usize) {
        self.bar.reset();
        self.bar.set_length(batches as u64);
        self.bar.set_prefix(format!("{} epoch {epoch}", self.label));
    }

    fn batch_done(&self, loss: f64) {
        self.bar.set_message(format!("loss {loss:.4}"));
        self.bar.inc(1);
    }

    fn epoch_done(&self, r: &EpochRecord) {
        let hit_rate = r
            .validation_hit_rate_50
            .map_or(String::new(), |h| format!("  HitRate@50 {h:.4}"));
        let line = format!(
            "{} epoch {:>3}  train loss {:.5}  validation loss {:.5}{hit_rate}  lr {:.0e}  {:.1} s{}",
            self.label,
            r.epoch,
            r.train_loss,
            r.validation_loss,
            r.lr,
            r.seconds,
            if r.improved { "  (best)" } else { "" }
        );
        if self.bar.is_hidden() {
            tracing::info!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}
