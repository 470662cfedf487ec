//! Integration tests of the core engine (issue 3): import and its errors, the split, the
//! `.npy` format, the nearest-neighbour indexes and KNN on demo data. One binary, so the
//! crate links once and the small demo dataset is generated once per run.

mod architecture;
mod audio;
mod cold;
mod duplicates;
mod experiment;
mod helpers;
mod import_errors;
mod knn;
mod musicnn;
mod npy;
mod plays;
mod split;
mod split_dates;
