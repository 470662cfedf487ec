//! HTTP integration tests: the real server on 127.0.0.1:0, spoken to over HTTP, against
//! SQLite and against Postgres (`TEST_DATABASE_URL`).

mod auth;
#[path = "../common/databases.rs"]
mod databases;
mod errors;
mod evaluations;
mod helpers;
mod openapi;
mod round_trip;
