//! Training BERT4Rec over frozen audio embeddings (masked-item objective). The encoder,
//! its kernels and checkpoints are in [`crate::model::bert4rec`].

pub mod fit;

pub use fit::{FitOutcome, TrainData, fit};

#[cfg(test)]
mod tests;
