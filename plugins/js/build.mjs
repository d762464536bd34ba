// Builds every JavaScript plugin in this directory into a WebAssembly component:
// <plugin>/index.js -> <repository>/target/plugins/<plugin>.wasm, for the `auto-reply` world
// of wit/v0.3.0, or, when the module exports `transform`, for the webhook transformation world
// of wit/transform/v0.1.0.
//
//   node build.mjs            # every plugin (a directory holding index.js)
//   node build.mjs echo-js    # only these
//
// A plugin is rebuilt only when its sources, the WIT or this script are newer than its
// component. Every optional WASI feature of componentize-js is disabled, so the component
// imports only wa-gateway:plugin/… (the store, the logger, the clock) and the gateway runs it
// as it runs a Rust plugin; a plugin that imports anything else is refused at upload.
import { componentize } from "@bytecodealliance/componentize-js";
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..", "..");
const outDir = join(repo, "target", "plugins");

const all = readdirSync(here).filter(
    (name) => name !== "node_modules" && existsSync(join(here, name, "index.js")),
);
const wanted = process.argv.slice(2);
for (const name of wanted) {
    if (!all.includes(name)) {
        console.error(`build.mjs: no JavaScript plugin ${name} (have: ${all.join(" ")})`);
        process.exit(1);
    }
}
const plugins = wanted.length > 0 ? wanted : all;

// The newest modification time of a file or of any file under a directory.
function newest(path) {
    const stat = statSync(path);
    if (!stat.isDirectory()) return stat.mtimeMs;
    return Math.max(stat.mtimeMs, ...readdirSync(path).map((entry) => newest(join(path, entry))));
}

mkdirSync(outDir, { recursive: true });
for (const name of plugins) {
    const dir = join(here, name);
    const source = join(dir, "index.js");
    // A module that exports `transform` is a webhook transformation; the others auto-reply.
    const transform = /^export\s+(async\s+)?function\s+transform\b/m.test(readFileSync(source, "utf8"));
    const witPath = transform ? join(repo, "wit", "transform", "v0.1.0") : join(repo, "wit", "v0.3.0");
    const out = join(outDir, `${name}.wasm`);
    const inputs = Math.max(newest(dir), newest(witPath), newest(fileURLToPath(import.meta.url)));
    if (existsSync(out) && statSync(out).mtimeMs > inputs) continue;

    const started = Date.now();
    const { component } = await componentize({
        sourcePath: source,
        witPath,
        worldName: transform ? "transform" : "auto-reply",
        disableFeatures: ["random", "stdio", "clocks", "http", "fetch-event"],
    });
    writeFileSync(out, component);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    console.log(`build.mjs: ${name}.wasm ${component.byteLength} bytes (${seconds} s)`);
}
