//! The `fuselab` binary's library: the web server (with the browser app embedded) and the CLI.

pub mod accounts;
pub mod align;
pub mod artifacts;
pub mod assets;
pub mod cli;
pub mod ctr;
pub mod db;
pub mod devices;
pub mod ensemble;
pub mod face;
pub mod jobs;
pub mod llm;
pub mod mask;
pub mod models;
pub mod pose;
pub mod reports;
pub mod server;
pub mod users;
