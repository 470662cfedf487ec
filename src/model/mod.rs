pub mod musicnn;
