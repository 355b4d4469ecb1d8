//! The images in real containers on a real engine. One binary, so the shared stack
//! (database + backend + frontend) starts once and serves every test that only reads.
//! Tests carry the design's property numbers (../shared/seeds, design doc).

mod backend;
mod database;
mod edge;
mod frontend;
mod secrets;
#[path = "../support/tls.rs"]
mod tls;
