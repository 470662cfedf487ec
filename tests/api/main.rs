//! HTTP integration tests: the real server on 127.0.0.1:0, spoken to over HTTP, against
//! SQLite and against Postgres (`TEST_DATABASE_URL`).

mod auth;
mod cluster;
#[path = "../common/databases.rs"]
mod databases;
mod errors;
mod evaluations;
mod experiments;
mod helpers;
mod jobs;
mod openapi;
mod outage;
mod process;
mod replicas;
mod round_trip;
mod startup;
mod tracks;
