//! The `bindgen!`s of the plugin worlds, one per version of `wa-gateway:plugin` the gateway
//! serves: `v0_1` for `wit/v0.1.0`, `v0_2` for `wit/v0.2.0`, `v0_3` for `wit/v0.3.0`; and
//! `transform` for the webhook transformation world (`wit/transform/v0.1.0`).
//!
//! Each version is a directory of its own holding one whole package, rather than both
//! packages in one tree: wit-parser reads a directory as one root package (plus `deps/`), and
//! a resolve holding two versions of one package makes every generator spell the version into
//! its names (`plugin0_2_0::types` instead of `plugin::types`), in the host and in every
//! guest. One package per directory keeps a guest's bindings the plain ones for the version it
//! targets, and lets the 0.1.0 file stay byte for byte what 0.1.0 plugins were built from.
//! The two worlds' interfaces have different names (`…/kv@0.1.0`, `…/kv@0.2.0`), so both are
//! added to the one linker; `host.rs` implements each version's `kv`, `log` and `clock` over
//! the same run state.
//!
//! What a guest hands the host (its decision, its log lines, its keys and values) is copied
//! out of its memory; the run's store caps those copies (`Store::set_hostcall_fuel`), so a
//! plugin cannot make the host allocate more than its output caps allow, however it lays
//! out its answer.

/// `wa-gateway:plugin@0.1.0`.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "wit/v0.1.0",
        world: "auto-reply",
        // `get` waits on the database and gives up (trapping the guest) at the run's
        // wall-clock deadline; everything else answers at once.
        imports: { "wa-gateway:plugin/kv.get": trappable },
    });
}

/// `wa-gateway:plugin@0.2.0`.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "wit/v0.2.0",
        world: "auto-reply",
        imports: { "wa-gateway:plugin/kv.get": trappable },
    });
}

/// `wa-gateway:plugin@0.3.0`: 0.2.0 and `http`. Its `types` are 0.2.0's, field for field, so
/// the 0.2.0 Rust types stand for them (wasmtime checks records, variants and enums by their
/// shape and names, not by the interface that declares them) and one conversion serves both.
pub mod v0_3 {
    wasmtime::component::bindgen!({
        path: "wit/v0.3.0",
        world: "auto-reply",
        // `send` gives up (trapping the guest) when the run's wall-clock deadline passes.
        imports: {
            "wa-gateway:plugin/kv.get": trappable,
            "wa-gateway:plugin/http.send": trappable,
        },
        with: { "wa-gateway:plugin/types@0.3.0": crate::plugins::runtime::bindings::v0_2::wa_gateway::plugin::types },
    });
}

/// `wa-gateway:transform@0.1.0`: the webhook transformation world. Its imports are 0.3.0's
/// interfaces (the package reads `wit/v0.3.0` as a dependency), so they map onto the `v0_3`
/// modules and are served by what `v0_3` already added to the linker; only its export and its
/// own types are generated here.
pub mod transform {
    wasmtime::component::bindgen!({
        path: "wit/transform/v0.1.0",
        world: "transform",
        with: {
            "wa-gateway:plugin/kv@0.3.0": crate::plugins::runtime::bindings::v0_3::wa_gateway::plugin::kv,
            "wa-gateway:plugin/log@0.3.0": crate::plugins::runtime::bindings::v0_3::wa_gateway::plugin::log,
            "wa-gateway:plugin/clock@0.3.0": crate::plugins::runtime::bindings::v0_3::wa_gateway::plugin::clock,
            "wa-gateway:plugin/http@0.3.0": crate::plugins::runtime::bindings::v0_3::wa_gateway::plugin::http,
        },
    });
}

// In each module, `message`, `context`, `decision` and `plugin-error` are `use`d by the world,
// so bindgen puts them at the top of the module; the rest is under
// `wa_gateway::plugin::{types, kv, log, clock}`. (No re-exports here: rustdoc cannot resolve a
// `use` of what a macro in the same module generates, and the doc tests would not build.)
