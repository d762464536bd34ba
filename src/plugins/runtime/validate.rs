//! Whether uploaded bytes are a component for the `auto-reply` world, with a reason a tenant
//! can act on when they are not.

use wasmtime::component::Component;
use wasmtime::Engine;

use super::InvalidPlugin;

/// The WIT package plugins are built against.
pub const PACKAGE: &str = "wa-gateway:plugin";
/// The world plugins target.
pub const WORLD: &str = "wa-gateway:plugin/auto-reply@0.1.0";
/// The interfaces of [`PACKAGE`] a plugin may import.
pub const INTERFACES: [&str; 4] = ["types", "kv", "log", "clock"];
/// The function a plugin exports.
pub const EXPORT: &str = "handle";

/// Refuses bytes that are not a WebAssembly component at all, before compiling them.
pub fn header(wasm: &[u8]) -> Result<(), InvalidPlugin> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return Err(InvalidPlugin::new("not a WebAssembly binary (it does not start with `\\0asm`)"));
    }
    match wasm[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => Err(InvalidPlugin::new(
            "a core WebAssembly module, not a component: turn it into a component for the \
             wa-gateway:plugin/auto-reply world (plugins/build.sh does, or `wasm-tools component new`)",
        )),
        _ => Err(InvalidPlugin::new("an unsupported WebAssembly binary version or layer")),
    }
}

/// Refuses a component that imports anything but the gateway's interfaces, naming the first
/// such import.
pub fn imports(engine: &Engine, component: &Component) -> Result<(), InvalidPlugin> {
    let ty = component.component_type();
    let mut foreign: Vec<&str> = Vec::new();
    for (name, _) in ty.imports(engine) {
        if !is_ours(name) {
            foreign.push(name);
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    let wasi = foreign.iter().any(|n| n.starts_with("wasi:"));
    let hint = if wasi {
        " (a plugin gets no WASI: build for wasm32-unknown-unknown, not wasm32-wasip1/p2, and avoid \
         std's file, network, environment and clock APIs)"
    } else {
        ""
    };
    Err(InvalidPlugin::new(format!(
        "it imports {}, which the gateway does not provide: a plugin may import only \
         {PACKAGE}/kv, log and clock{hint}",
        foreign.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
    )))
}

/// Whether `name` is one of the gateway's interfaces (any version: the linker judges those).
pub fn is_ours(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PACKAGE).and_then(|r| r.strip_prefix('/')) else {
        return false;
    };
    let interface = rest.split('@').next().unwrap_or(rest);
    INTERFACES.contains(&interface)
}

/// Refuses a component without a `handle` function export.
pub fn exports(engine: &Engine, component: &Component) -> Result<(), InvalidPlugin> {
    let ty = component.component_type();
    match ty.get_export(engine, EXPORT) {
        Some(e) if matches!(e.ty, wasmtime::component::types::ComponentItem::ComponentFunc(_)) => Ok(()),
        Some(_) => Err(InvalidPlugin::new(format!("its export `{EXPORT}` is not a function"))),
        None => {
            let names: Vec<String> = ty.exports(engine).map(|(n, _)| format!("`{n}`")).collect();
            let have = if names.is_empty() { "nothing".to_string() } else { names.join(", ") };
            Err(InvalidPlugin::new(format!(
                "it does not export `{EXPORT}`, so it is not built for the {WORLD} world (it exports {have})"
            )))
        }
    }
}

/// Refuses a component that could never be instantiated under the operator's limits.
pub fn resources(component: &Component, memory_limit: usize) -> Result<(), InvalidPlugin> {
    let Some(needs) = component.resources_required() else {
        return Ok(());
    };
    if needs.num_memories > 2 {
        return Err(InvalidPlugin::new(format!(
            "it defines {} linear memories, at most 2 are allowed",
            needs.num_memories
        )));
    }
    // In 64 KiB WebAssembly pages.
    if let Some(initial) = needs.max_initial_memory_size.map(|pages| pages.saturating_mul(65536)) {
        if usize::try_from(initial).map_or(true, |b| b > memory_limit) {
            return Err(InvalidPlugin::new(format!(
                "its memory starts at {initial} bytes, over the memory limit of {memory_limit} bytes"
            )));
        }
    }
    if needs.num_tables > 4 {
        return Err(InvalidPlugin::new(format!(
            "it defines {} tables, at most 4 are allowed",
            needs.num_tables
        )));
    }
    if let Some(initial) = needs.max_initial_table_size {
        if initial > 10_000 {
            return Err(InvalidPlugin::new(format!(
                "a table starts with {initial} elements, at most 10000 are allowed"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_gateways_interfaces_are_ours() {
        assert!(is_ours("wa-gateway:plugin/kv@0.1.0"));
        assert!(is_ours("wa-gateway:plugin/types@0.1.0"));
        assert!(is_ours("wa-gateway:plugin/clock"));
        assert!(!is_ours("wa-gateway:plugin/http@0.1.0"));
        assert!(!is_ours("wa-gateway:pluginx/kv@0.1.0"));
        assert!(!is_ours("wasi:cli/environment@0.2.6"));
        assert!(!is_ours("kv"));
    }

    #[test]
    fn headers_tell_modules_components_and_junk_apart() {
        assert!(header(b"\0asm\x0d\0\x01\0").is_ok());
        let module = header(b"\0asm\x01\0\0\0").unwrap_err();
        assert!(module.reason().contains("core WebAssembly module"), "{module}");
        assert!(header(b"PK\x03\x04 zip").unwrap_err().reason().contains("not a WebAssembly binary"));
        assert!(header(b"").is_err());
        assert!(header(b"\0asm\x02\0\0\0").is_err());
    }
}
