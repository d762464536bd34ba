//! `wa-gateway-componentize IN OUT`: turns a plugin's core wasm module into a component.
//!
//! `plugins/build.sh` runs it over every plugin it builds. `wit-bindgen` embeds the world the
//! plugin was written against in a `component-type:…` custom section of the core module;
//! `wit-component` reads that section and wraps the module in a component that imports and
//! exports exactly that world. The tool then checks what the gateway would refuse anyway:
//! the result must validate as a component and import nothing outside `wa-gateway:plugin/…`
//! (no WASI, no other host interfaces). It prints the imports and exports it found.
//!
//! An input that already is a component is only checked and copied.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use wasmparser::{ComponentTypeRef, Parser, Payload, Validator, WasmFeatures};
use wit_component::ComponentEncoder;

/// The namespace every imported instance or function of a plugin component must come from
/// (imported type names are not checked: they carry no capability).
const ALLOWED_IMPORT_PREFIX: &str = "wa-gateway:plugin/";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("componentize: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(input), Some(output), None) = (args.next(), args.next(), args.next()) else {
        bail!("usage: wa-gateway-componentize IN.wasm OUT.wasm");
    };
    let (input, output) = (PathBuf::from(input), PathBuf::from(output));

    let bytes = std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
    let component = if Parser::is_component(&bytes) {
        bytes
    } else if Parser::is_core_wasm(&bytes) {
        ComponentEncoder::default()
            .module(&bytes)
            .and_then(|encoder| encoder.validate(true).encode())
            .with_context(|| format!("componentizing {}", input.display()))?
    } else {
        bail!("{} is not a WebAssembly module or component", input.display());
    };

    Validator::new_with_features(WasmFeatures::all())
        .validate_all(&component)
        .with_context(|| format!("validating the component made from {}", input.display()))?;
    let surface = Surface::of(&component)?;
    if let Some(bad) = surface.imports.iter().find(|name| !name.starts_with(ALLOWED_IMPORT_PREFIX)) {
        bail!(
            "{} imports `{bad}`: a plugin may import only `{ALLOWED_IMPORT_PREFIX}…` \
             (is a dependency pulling in WASI or wasm-bindgen?)",
            input.display()
        );
    }

    std::fs::write(&output, &component).with_context(|| format!("writing {}", output.display()))?;
    println!(
        "{}: imports [{}], types [{}], exports [{}]",
        output.display(),
        surface.imports.join(", "),
        surface.types.join(", "),
        surface.exports.join(", ")
    );
    Ok(())
}

/// The names a component imports and exports at its top level.
struct Surface {
    /// Imported instances and functions: what the host must provide.
    imports: Vec<String>,
    /// Imported type names (the world's `use types.{…}`): nothing for the host to provide.
    types: Vec<String>,
    exports: Vec<String>,
}

impl Surface {
    fn of(component: &[u8]) -> Result<Surface> {
        let mut surface = Surface { imports: Vec::new(), types: Vec::new(), exports: Vec::new() };
        // Nested modules and components report their own sections and `End`; only depth 0
        // is the component's own surface.
        let mut depth = 0usize;
        for payload in Parser::new(0).parse_all(component) {
            match payload? {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::ComponentImportSection(reader) if depth == 0 => {
                    for import in reader {
                        let import = import?;
                        let name = import.name.name.to_string();
                        match import.ty {
                            ComponentTypeRef::Type(_) => surface.types.push(name),
                            _ => surface.imports.push(name),
                        }
                    }
                }
                Payload::ComponentExportSection(reader) if depth == 0 => {
                    for export in reader {
                        surface.exports.push(export?.name.name.to_string());
                    }
                }
                _ => {}
            }
        }
        Ok(surface)
    }
}
