//! audiorec: music recommendation from frozen, pretrained audio embeddings plus listening
//! histories, after Tamm & Aljanaki, *Comparative Analysis of Pretrained Audio
//! Representations in Music Recommender Systems* (RecSys '24).
//!
//! Data flows `dataset` → `embeddings` → `index` → `recommend` → `eval`.

pub mod api;
pub mod audio;
pub mod bounded;
pub mod config;
pub mod dataset;
pub mod embeddings;
pub mod eval;
pub mod experiment;
pub mod index;
pub mod io;
pub mod jobs;
pub mod model;
pub mod recommend;
pub mod simd;
pub mod store;
pub mod train;
