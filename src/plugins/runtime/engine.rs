//! The one wasmtime `Engine`: its settings, the epoch ticker, and the id of its artefacts.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::PluginsConfig;

/// Plugin runs that may be in flight at once: the pooling allocator reserves this many
/// instance slots, and `Runtime::run` queues callers beyond it instead of failing them.
pub const SLOTS: u32 = 128;

/// Core module instances one plugin may hold.
pub const MAX_CORE_INSTANCES: u32 = 48;

/// How often the ticker advances the epoch: the granularity of the CPU and wall-clock checks.
pub const TICK: Duration = Duration::from_millis(2);

/// A WebAssembly page.
const PAGE: usize = 64 * 1024;

/// Builds the engine for `cfg`.
///
/// Every memory lives in a pooled slot of `memory_limit` bytes (rounded up to a page) that
/// never moves, with a small guard region, instead of wasmtime's default 4 GiB reservation
/// per memory: 128 slots then reserve a few GiB of address space rather than a TiB, at the
/// price of explicit bounds checks in compiled code (plugins are short; instantiation, not
/// memory access, dominates their cost).
pub fn build(cfg: &PluginsConfig) -> wasmtime::Result<Engine> {
    let memory = cfg.memory_limit.max(PAGE).div_ceil(PAGE) * PAGE;

    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(SLOTS)
        // A Rust plugin is one or two core instances; a Python one (componentize-py, its WASI
        // stubbed) is 38: the interpreter and libc as shared libraries, and one stub module per
        // WASI interface it would otherwise import.
        .max_core_instances_per_component(MAX_CORE_INSTANCES)
        .total_core_instances(SLOTS * 16)
        .max_memories_per_component(2)
        .max_memories_per_module(1)
        .total_memories(SLOTS * 2)
        .max_tables_per_component(4)
        .max_tables_per_module(2)
        .total_tables(SLOTS * 4)
        .table_elements(10_000)
        .max_memory_size(memory)
        // Keep the first pages of a reused slot mapped: most plugins never touch more, so a
        // run does not start with page faults.
        .linear_memory_keep_resident(256 * 1024)
        .table_keep_resident(64 * 1024);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .memory_reservation(memory as u64)
        .memory_reservation_for_growth(0)
        .memory_guard_size(2 * 1024 * 1024)
        .memory_may_move(false)
        .max_wasm_stack(512 * 1024)
        .parallel_compilation(true);
    Engine::new(&config)
}

/// Advances `engine`'s epoch every [`TICK`] on a thread of its own, until the engine is
/// dropped.
pub fn start_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new().name("plugin-epoch".into()).spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(TICK);
        }
    })?;
    Ok(())
}

/// `wasmtime-<version>-<hash>`: artefacts stored under another id were compiled by another
/// wasmtime or with settings that change compiled code, and are compiled again.
pub fn id(engine: &Engine) -> String {
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = Sha(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let digest = hasher.0.finalize();
    format!("wasmtime-{}-{}", wasmtime_version(), hex::encode(&digest[..8]))
}

/// The wasmtime version this binary links (pinned in Cargo.toml).
fn wasmtime_version() -> &'static str {
    "48.0.8"
}
