//! The one `bindgen!` of the plugin world (`wit/plugin.wit`).
//!
//! What a guest hands the host (its decision, its log lines, its keys and values) is copied
//! out of its memory; the run's store caps those copies (`Store::set_hostcall_fuel`), so a
//! plugin cannot make the host allocate more than its output caps allow, however it lays
//! out its answer.

wasmtime::component::bindgen!({
    path: "wit",
    world: "auto-reply",
    // `get` waits on the database and gives up (trapping the guest) at the run's wall-clock
    // deadline; everything else answers at once.
    imports: { "wa-gateway:plugin/kv.get": trappable },
});

// `message`, `context`, `decision` and `plugin-error` are `use`d by the world, so bindgen puts
// them at the top of this module; the rest is under `wa_gateway::plugin::{types, kv, log,
// clock}`. (No re-exports here: rustdoc cannot resolve a `use` of what a macro in the same
// module generates, and the doc tests would not build.)
