pub mod le;
