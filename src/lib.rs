//! wa-gateway: a self-hosted, multi-tenant WhatsApp gateway.
//!
//! The binary in `main.rs` parses the command line and calls into this library; `app` is the
//! composition root that wires storage, services, drivers and workers together.

// Unsafe code is refused except where a module allows it for one call and says why
// (loading wasmtime's compiled plugin artefacts).
#![deny(unsafe_code)]

pub mod api;
pub mod app;
pub mod backup;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod content;
pub mod dashboard;
pub mod db;
pub mod devices;
pub mod error;
pub mod limits;
pub mod messages;
pub mod metrics;
pub mod net;
pub mod phone;
pub mod plugins;
pub mod resource;
pub mod retention;
pub mod rules;
pub mod scheduler;
pub mod state;
pub mod telemetry;
pub mod tenants;
pub mod time;
pub mod webhooks;

pub use app::{App, AppState};
pub use config::Config;
