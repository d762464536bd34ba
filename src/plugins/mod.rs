//! Tenant-uploaded WebAssembly plugins: the wasmtime host (`runtime`), the
//! key-value store plugins import (`kv`), the hosts a plugin may reach over HTTP (`hosts`), the service that keeps each tenant's plugins ready to
//! run, and the inbound pipeline stage that runs them.

pub mod check;
pub mod fairness;
pub mod hosts;
pub mod kv;
pub mod manage;
pub mod runtime;
pub mod service;
pub mod stage;

pub use service::Plugins;
pub use stage::PluginStage;
