//! The paper's comparison as one command: every backend under KNN, the Shallow Net and
//! BERT4Rec (plus their Random rows), trained where needed, evaluated on validation and
//! test users, stored run by run, and read back into the report (Tables 1–3 with
//! significance). The CLI's `experiment` and `report` commands and the service's job
//! worker call it; it sits above `train` and `eval`, and nothing that serves imports it.
//!
//! - [`config`]: the TOML a researcher writes;
//! - [`plan`]: the cells and their estimated time;
//! - [`cell`]: training and evaluating one cell;
//! - [`grid`]: running the grid, resuming what an interruption left;
//! - [`manifest`]: what produced it;
//! - [`source`]: the service's grids, on the data it serves;
//! - [`progress`]: where the service's running grids are;
//! - [`demo`]: the demo's models, trained in the background of a running service.
//!
//! The report is read back from the database by `crate::eval::stored`.

pub mod cell;
pub mod config;
pub mod demo;
pub mod grid;
pub mod manifest;
pub mod plan;
pub mod progress;
pub mod source;

pub use crate::eval::stored::load_report;
pub use config::ExperimentConfig;
pub use grid::{GridObserver, run_grid};
