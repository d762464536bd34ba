//! `wa-gateway plugin check FILE`: what a component imports and exports, and whether it is a
//! plugin the gateway can run.

use std::fmt::Write;

use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::Engine;

use super::runtime::{InvalidPlugin, Runtime, World};

/// What `plugin check` found.
pub struct Inspection {
    /// Size, imports and exports with their types, when the bytes are a component at all;
    /// for a plugin the gateway can run, ending with the world version it implements.
    pub listing: Option<String>,
    /// Whether it is a plugin the gateway can run, and why not.
    pub verdict: Result<(), InvalidPlugin>,
    /// The world version it implements, when it is a plugin the gateway can run.
    pub world: Option<World>,
}

/// Compiles `wasm` once, lists what it imports and exports, and checks it against the worlds
/// and the limits as an upload would be.
pub fn inspect(runtime: &Runtime, wasm: &[u8]) -> Inspection {
    let component = match runtime.component(wasm) {
        Ok(component) => component,
        Err(invalid) => return Inspection { listing: None, verdict: Err(invalid), world: None },
    };
    let mut listing = render(runtime.engine(), &component, wasm.len());
    let world = runtime.check_size(wasm).and_then(|()| runtime.prepare(&component).map(|p| p.world()));
    match world {
        Ok(world) => {
            let _ = writeln!(listing, "world: {world}");
            Inspection { listing: Some(listing), verdict: Ok(()), world: Some(world) }
        }
        Err(invalid) => Inspection { listing: Some(listing), verdict: Err(invalid), world: None },
    }
}

/// The listing of `wasm` followed by a line saying which world version it fits; `Err` with
/// the reason when it fits none (see [`inspect`] for the listing of a component that does not).
pub fn describe(runtime: &Runtime, wasm: &[u8]) -> Result<String, InvalidPlugin> {
    let Inspection { listing, verdict, world } = inspect(runtime, wasm);
    verdict?;
    let world = world.map_or(String::new(), |w| w.to_string());
    let mut text = listing.unwrap_or_default();
    let _ = writeln!(text, "\nfits the {world} world: yes");
    Ok(text)
}

fn render(engine: &Engine, component: &wasmtime::component::Component, size: usize) -> String {
    let ty = component.component_type();
    let mut text = format!("component: {size} bytes\n");
    for (heading, items) in [
        ("imports", ty.imports(engine).map(|(n, e)| (n, e.ty)).collect::<Vec<_>>()),
        ("exports", ty.exports(engine).map(|(n, e)| (n, e.ty)).collect::<Vec<_>>()),
    ] {
        if items.is_empty() {
            let _ = writeln!(text, "{heading}: none");
            continue;
        }
        let _ = writeln!(text, "{heading}:");
        for (name, item) in items {
            item_line(&mut text, engine, name, &item, 1);
        }
    }
    text
}

fn item_line(out: &mut String, engine: &Engine, name: &str, item: &ComponentItem, depth: usize) {
    let pad = "  ".repeat(depth);
    match item {
        ComponentItem::ComponentFunc(f) => {
            let _ = writeln!(out, "{pad}{name}: {}", func(f));
        }
        ComponentItem::ComponentInstance(instance) => {
            let exports: Vec<_> = instance.exports(engine).map(|(n, e)| (n, e.ty)).collect();
            let _ = writeln!(out, "{pad}{name}: instance");
            for (n, e) in exports {
                item_line(out, engine, n, &e, depth + 1);
            }
        }
        ComponentItem::Type(t) => {
            let _ = writeln!(out, "{pad}{name}: type {}", ty(t));
        }
        ComponentItem::Resource(_) => {
            let _ = writeln!(out, "{pad}{name}: resource");
        }
        ComponentItem::CoreFunc(_) => {
            let _ = writeln!(out, "{pad}{name}: core function");
        }
        ComponentItem::Module(_) => {
            let _ = writeln!(out, "{pad}{name}: core module");
        }
        ComponentItem::Component(_) => {
            let _ = writeln!(out, "{pad}{name}: component");
        }
    }
}

/// `func(a: t, ...) -> r`, in WIT notation.
fn func(f: &ComponentFunc) -> String {
    let params: Vec<String> = f.params().map(|(n, t)| format!("{n}: {}", ty(&t))).collect();
    let results: Vec<String> = f.results().map(|t| ty(&t)).collect();
    let asyncness = if f.async_() { "async " } else { "" };
    let mut s = format!("{asyncness}func({})", params.join(", "));
    match results.len() {
        0 => {}
        1 => {
            let _ = write!(s, " -> {}", results[0]);
        }
        _ => {
            let _ = write!(s, " -> ({})", results.join(", "));
        }
    }
    s
}

/// A type in WIT notation, records and variants spelled out (the component type carries no
/// type names).
fn ty(t: &Type) -> String {
    match t {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(l) => format!("list<{}>", ty(&l.ty())),
        Type::Map(m) => format!("map<{}, {}>", ty(&m.key()), ty(&m.value())),
        Type::FixedLengthList(l) => format!("list<{}, {}>", ty(&l.ty()), l.len()),
        Type::Record(r) => {
            let fields: Vec<String> = r.fields().map(|f| format!("{}: {}", f.name, ty(&f.ty))).collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        Type::Tuple(t) => format!("tuple<{}>", t.types().map(|t| ty(&t)).collect::<Vec<_>>().join(", ")),
        Type::Variant(v) => {
            let cases: Vec<String> = v
                .cases()
                .map(|c| match &c.ty {
                    Some(t) => format!("{}({})", c.name, ty(t)),
                    None => c.name.to_string(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Option(o) => format!("option<{}>", ty(&o.ty())),
        Type::Result(r) => match (r.ok(), r.err()) {
            (None, None) => "result".into(),
            (Some(ok), None) => format!("result<{}>", ty(&ok)),
            (None, Some(err)) => format!("result<_, {}>", ty(&err)),
            (Some(ok), Some(err)) => format!("result<{}, {}>", ty(&ok), ty(&err)),
        },
        Type::Flags(f) => format!("flags {{ {} }}", f.names().collect::<Vec<_>>().join(", ")),
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        Type::Future(f) => match f.ty() {
            Some(t) => format!("future<{}>", ty(&t)),
            None => "future".into(),
        },
        Type::Stream(s) => match s.ty() {
            Some(t) => format!("stream<{}>", ty(&t)),
            None => "stream".into(),
        },
        Type::ErrorContext => "error-context".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_component_is_listed_but_does_not_fit() {
        let cfg = crate::Config::from_toml("").unwrap().plugins;
        let runtime = Runtime::new(&cfg).unwrap();
        let empty = b"\0asm\x0d\0\x01\0";
        let found = inspect(&runtime, empty);
        let listing = found.listing.unwrap();
        assert!(listing.contains("imports: none"), "{listing}");
        assert!(listing.contains("exports: none"), "{listing}");
        let err = found.verdict.unwrap_err();
        assert!(err.reason().contains("does not export `handle`"), "{err}");
        assert_eq!(describe(&runtime, empty).unwrap_err(), err);
        let junk = inspect(&runtime, b"junk");
        assert!(junk.listing.is_none());
        assert!(junk.verdict.unwrap_err().reason().contains("not a WebAssembly binary"));
    }
}
