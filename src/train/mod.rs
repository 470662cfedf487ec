//! Training the neural recommenders with candle: the epoch loop both nets share
//! ([`fit`]), the optimiser whose state a checkpoint carries ([`adam`]), and each net's
//! loss and data ([`shallow`], [`bert4rec`]). The nets, their checkpoints and devices are
//! in [`crate::model`]; nothing that serves imports this module.

pub mod adam;
pub mod bert4rec;
pub mod fit;
pub mod shallow;
