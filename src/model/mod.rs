//! The networks and their checkpoints, shared by training (`train`) and serving
//! (`recommend`): the Shallow Net, BERT4Rec with its fused CPU kernels, one checkpoint
//! format for both, the schedules whose state a checkpoint carries, and device selection;
//! and MusiCNN (inference only), which turns audio into the paper's best content rows.
//!
//! Nothing here trains: optimisers, sampling and the epoch loop live in `train`, which
//! depends on this layer; serving never imports `train`.

pub mod bert4rec;
pub mod checkpoint;
pub mod content;
pub mod device;
pub mod musicnn;
pub mod schedule;
pub mod shallow;

pub use device::{device_from_env, parse_device};
