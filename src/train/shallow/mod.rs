//! Training the Shallow Net of Tamm & Aljanaki (RecSys '24).
//!
//! - [`loss`]: the hinge loss and the batched forward pass;
//! - [`sampling`]: positive pairs and negative users;
//! - [`fit`]: the net as a [`crate::train::fit::Trainable`] for the shared epoch loop.
//!
//! The net and its checkpoints are in [`crate::model::shallow`].

pub mod fit;
pub mod loss;
pub mod sampling;

pub use fit::{FitOutcome, TrainData, fit};

#[cfg(test)]
pub(crate) mod tests;
