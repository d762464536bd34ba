//! Whether uploaded bytes are a component for a version of the `auto-reply` world, with a
//! reason a tenant can act on when they are not.

use serde::{Deserialize, Serialize};
use wasmtime::component::Component;
use wasmtime::Engine;

use super::InvalidPlugin;

/// The WIT package plugins are built against.
pub const PACKAGE: &str = "wa-gateway:plugin";
/// The world plugins target, without a version: the gateway serves every [`World`].
pub const WORLD: &str = "wa-gateway:plugin/auto-reply";
/// The WIT package of webhook transformations.
pub const TRANSFORM_PACKAGE: &str = "wa-gateway:transform";
/// The webhook transformation world.
pub const TRANSFORM_WORLD: &str = "wa-gateway:transform/transform@0.1.0";
/// The function a webhook transformation exports.
pub const TRANSFORM_EXPORT: &str = "transform";

/// A version of the plugin world the gateway serves. A component implements exactly one: the
/// type of its `handle` export says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum World {
    /// `wa-gateway:plugin/auto-reply@0.1.0`: text and media, replies by text and media.
    #[serde(rename = "0.1.0")]
    V0_1,
    /// `wa-gateway:plugin/auto-reply@0.2.0`: every message kind; replies by text, media,
    /// location and contact cards, quoting; reactions and read marks.
    #[serde(rename = "0.2.0")]
    V0_2,
    /// `wa-gateway:plugin/auto-reply@0.3.0`: 0.2.0 and outbound HTTP.
    #[serde(rename = "0.3.0")]
    V0_3,
    /// `wa-gateway:transform/transform@0.1.0`: a webhook transformation (not an auto-reply
    /// world, so not in [`World::ALL`]).
    #[serde(rename = "transform-0.1.0")]
    Transform0_1,
}

/// What a plugin is for, by the world it implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    /// Runs for inbound messages (the `auto-reply` world).
    AutoReply,
    /// Shapes the events of the webhook endpoints that name it (the `transform` world).
    Transform,
}

impl PluginKind {
    /// `auto_reply` or `transform`, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::AutoReply => "auto_reply",
            PluginKind::Transform => "transform",
        }
    }
}

impl World {
    /// Every version served, the newest first.
    pub const ALL: [World; 3] = [World::V0_3, World::V0_2, World::V0_1];

    /// `0.1.0`, `0.2.0`.
    pub fn version(self) -> &'static str {
        match self {
            World::V0_1 | World::Transform0_1 => "0.1.0",
            World::V0_2 => "0.2.0",
            World::V0_3 => "0.3.0",
        }
    }

    /// What a plugin of this world is for.
    pub fn kind(self) -> PluginKind {
        match self {
            World::Transform0_1 => PluginKind::Transform,
            _ => PluginKind::AutoReply,
        }
    }

    /// The world's full name, `wa-gateway:plugin/auto-reply@<version>`.
    pub fn name(self) -> &'static str {
        match self {
            World::V0_1 => "wa-gateway:plugin/auto-reply@0.1.0",
            World::V0_2 => "wa-gateway:plugin/auto-reply@0.2.0",
            World::V0_3 => "wa-gateway:plugin/auto-reply@0.3.0",
            World::Transform0_1 => TRANSFORM_WORLD,
        }
    }

    fn from_version(version: &str) -> Option<World> {
        World::ALL.into_iter().find(|w| w.version() == version)
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
/// The interfaces of [`PACKAGE`] a plugin may import.
pub const INTERFACES: [&str; 5] = ["types", "kv", "log", "clock", "http"];
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
        " (a plugin gets no WASI: build Rust for wasm32-unknown-unknown, not wasm32-wasip1/p2; \
         JavaScript with componentize-js's WASI features disabled; Python with \
         `componentize-py componentize --stub-wasi`)"
    } else {
        ""
    };
    Err(InvalidPlugin::new(format!(
        "it imports {}, which the gateway does not provide: a plugin may import only \
         {PACKAGE}/kv, log, clock and http{hint}",
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

/// Whether a component imports the gateway's `http` interface.
pub fn imports_http(engine: &Engine, component: &Component) -> bool {
    let prefix = format!("{PACKAGE}/http@");
    component.component_type().imports(engine).any(|(name, _)| name.starts_with(&prefix))
}

/// The world version a component's imports of the gateway's interfaces name, when they name
/// one version the gateway serves and no other. A hint for which world to check first (and
/// whose reason to give when none fits): a component that imports nothing names none.
pub fn imported_world(engine: &Engine, component: &Component) -> Option<World> {
    let ty = component.component_type();
    let mut found = None;
    for (name, _) in ty.imports(engine) {
        if !is_ours(name) {
            continue;
        }
        let version = name.split_once('@').map(|(_, v)| v)?;
        let world = World::from_version(version)?;
        if found.is_some_and(|f| f != world) {
            return None;
        }
        found = Some(world);
    }
    found
}

/// What a component is by its exports: an auto-reply plugin (`handle`) or a webhook
/// transformation (`transform`); refuses one with neither function.
pub fn exports(engine: &Engine, component: &Component) -> Result<PluginKind, InvalidPlugin> {
    let ty = component.component_type();
    let is_func = |name: &str| {
        ty.get_export(engine, name)
            .map(|e| matches!(e.ty, wasmtime::component::types::ComponentItem::ComponentFunc(_)))
    };
    match (is_func(EXPORT), is_func(TRANSFORM_EXPORT)) {
        (Some(true), _) => Ok(PluginKind::AutoReply),
        (_, Some(true)) => Ok(PluginKind::Transform),
        (Some(false), _) => Err(InvalidPlugin::new(format!("its export `{EXPORT}` is not a function"))),
        (_, Some(false)) => {
            Err(InvalidPlugin::new(format!("its export `{TRANSFORM_EXPORT}` is not a function")))
        }
        (None, None) => {
            let names: Vec<String> = ty.exports(engine).map(|(n, _)| format!("`{n}`")).collect();
            let have = if names.is_empty() { "nothing".to_string() } else { names.join(", ") };
            Err(InvalidPlugin::new(format!(
                "it does not export `{EXPORT}` (the {WORLD} world) nor `{TRANSFORM_EXPORT}` (the \
                 {TRANSFORM_WORLD} world); it exports {have}"
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
        assert!(is_ours("wa-gateway:plugin/http@0.3.0"));
        assert!(!is_ours("wa-gateway:plugin/fs@0.3.0"));
        assert!(!is_ours("wa-gateway:pluginx/kv@0.1.0"));
        assert!(!is_ours("wasi:cli/environment@0.2.6"));
        assert!(!is_ours("kv"));
    }

    #[test]
    fn worlds_have_their_versions_in_their_names() {
        for world in World::ALL {
            assert_eq!(world.name(), format!("{WORLD}@{}", world.version()));
            assert_eq!(World::from_version(world.version()), Some(world));
            assert_eq!(serde_json::to_value(world).unwrap(), serde_json::json!(world.version()));
        }
        assert_eq!(World::ALL[0], World::V0_3, "the newest first");
        assert_eq!(World::from_version("0.4.0"), None);
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
