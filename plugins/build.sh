#!/usr/bin/env bash
# Builds wa-gateway's plugins into WebAssembly components: target/plugins/<name>.wasm.
#
#   plugins/build.sh               # every plugin: the crates under plugins/, plugins/js/*
#   plugins/build.sh echo echo-js  # only these
#
# Works from any directory. Two ways to get a wasm32 standard library, detected in this order
# (WA_PLUGINS_TOOLCHAIN=rustup|debian forces one):
#   rustup  `rustup target add wasm32-unknown-unknown` was done (or the active rustc has a
#           wasm32-unknown-unknown sysroot): plain `cargo build --target wasm32-unknown-unknown`.
#   debian  Debian's rustc-web + rust-web-src (`apt-get install rustc-web rust-web-src`):
#           /usr/bin/rustc with RUSTC_BOOTSTRAP=1 builds std from /usr/lib/rustlib/src with
#           `-Z build-std`, linked by rustup's rust-lld (or a `wasm-ld` on PATH).
# The core modules land in ${CARGO_TARGET_DIR:-target}/plugins-build; the native tool
# plugins/componentize (wit-component) turns each into a component and refuses any that
# imports something outside wa-gateway:plugin/… (WASI, for instance).
#
# JavaScript plugins (plugins/js/<name>/index.js) are built with componentize-js when Node.js
# and npm are installed (`npm ci` in plugins/js, then plugins/js/build.mjs); Python plugins
# (plugins/py/<name>/app.py; one whose class defines `transform` is built for the webhook
# transformation world) with componentize-py, installed from PyPI into a virtual
# environment under ~/.cache when Python 3 with venv is there. Without a language's tools the
# script says so and builds the others.
set -euo pipefail

plugins_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$plugins_dir")"
target_base="${CARGO_TARGET_DIR:-$repo/target}"
wasm_target_dir="$target_base/plugins-build"
out_dir="$repo/target/plugins"
target=wasm32-unknown-unknown

die() {
    echo "plugins/build.sh: $*" >&2
    exit 1
}

# The plugins: every crate directory under plugins/ whose crate type is cdylib (its directory
# name is its package name and the name of its .wasm).
all_plugins=()
for manifest in "$plugins_dir"/*/Cargo.toml; do
    if grep -q '"cdylib"' "$manifest"; then
        all_plugins+=("$(basename "$(dirname "$manifest")")")
    fi
done
# The JavaScript plugins: every directory under plugins/js holding an index.js.
all_js=()
for source in "$plugins_dir"/js/*/index.js; do
    [[ -f "$source" ]] && all_js+=("$(basename "$(dirname "$source")")")
done
# The Python plugins: every directory under plugins/py holding an app.py.
all_py=()
for source in "$plugins_dir"/py/*/app.py; do
    [[ -f "$source" ]] && all_py+=("$(basename "$(dirname "$source")")")
done
if (($# > 0)); then
    plugins=()
    js_plugins=()
    py_plugins=()
    for name in "$@"; do
        if [[ " ${all_plugins[*]} " == *" $name "* ]]; then
            plugins+=("$name")
        elif [[ " ${all_js[*]} " == *" $name "* ]]; then
            js_plugins+=("$name")
        elif [[ " ${all_py[*]} " == *" $name "* ]]; then
            py_plugins+=("$name")
        else
            die "no plugin $name (have: ${all_plugins[*]} ${all_js[*]} ${all_py[*]})"
        fi
    done
else
    plugins=("${all_plugins[@]}")
    js_plugins=(${all_js[@]+"${all_js[@]}"})
    py_plugins=(${all_py[@]+"${all_py[@]}"})
fi
mkdir -p "$out_dir"

# JavaScript first: it needs no Rust toolchain for wasm32.
if ((${#js_plugins[@]} > 0)); then
    if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
        echo "plugins/build.sh: building ${js_plugins[*]} with componentize-js"
        # `npm ci` again only when the lock file changed since the last install.
        if [[ ! -f "$plugins_dir/js/node_modules/.package-lock.json" ||
            "$plugins_dir/js/package-lock.json" -nt "$plugins_dir/js/node_modules/.package-lock.json" ]]; then
            (cd "$plugins_dir/js" && npm ci --no-audit --no-fund --loglevel=error)
        fi
        node "$plugins_dir/js/build.mjs" "${js_plugins[@]}"
    else
        echo "plugins/build.sh: Node.js and npm are not installed: skipping the JavaScript plugins (${js_plugins[*]})" >&2
        js_plugins=()
    fi
fi

# Python: componentize-py (pinned in plugins/py/requirements.txt) in a virtual environment
# kept between runs. `--stub-wasi` replaces the WASI imports of the Python runtime with stubs
# that trap, so the component imports only wa-gateway:plugin/… like every other plugin.
if ((${#py_plugins[@]} > 0)); then
    py_version="$(sed -n 's/^componentize-py==//p' "$plugins_dir/py/requirements.txt")"
    py_venv="${XDG_CACHE_HOME:-$HOME/.cache}/wa-gateway-plugins/componentize-py-$py_version"
    if ! "$py_venv/bin/componentize-py" --version >/dev/null 2>&1; then
        if python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
            echo "plugins/build.sh: installing componentize-py $py_version from PyPI into $py_venv"
            rm -rf "$py_venv"
            python3 -m venv "$py_venv"
            "$py_venv/bin/pip" install -q -r "$plugins_dir/py/requirements.txt" ||
                die "cannot install componentize-py from PyPI"
        else
            echo "plugins/build.sh: Python 3 with venv is not installed: skipping the Python plugins (${py_plugins[*]})" >&2
            py_plugins=()
        fi
    fi
    if ((${#py_plugins[@]} > 0)); then
        echo "plugins/build.sh: building ${py_plugins[*]} with componentize-py $py_version"
    fi
    for name in ${py_plugins[@]+"${py_plugins[@]}"}; do
        component="$out_dir/$name.wasm"
        if [[ -f "$component" && -z "$(find "$plugins_dir/py/$name" "$repo/wit/v0.3.0" "$repo/wit/transform" \
            "$plugins_dir/py/requirements.txt" "$plugins_dir/build.sh" -newer "$component" \
            -type f -not -path '*/__pycache__/*' -print -quit)" ]]; then
            continue
        fi
        # An app that defines `transform` is a webhook transformation; the others auto-reply.
        if grep -qE '^[[:space:]]+def transform\(' "$plugins_dir/py/$name/app.py"; then
            wit="$repo/wit/transform/v0.1.0" world=transform
        else
            wit="$repo/wit/v0.3.0" world=auto-reply
        fi
        "$py_venv/bin/componentize-py" --wit-path "$wit" --world "$world" \
            componentize --stub-wasi --python-path "$plugins_dir/py/$name" app --output "$component"
    done
fi
if ((${#plugins[@]} == 0)); then
    exit 0
fi

# Which toolchain builds wasm32.
host_sysroot="$(rustc --print sysroot)"
host_triple="$(rustc -vV | sed -n 's/^host: //p')"
toolchain="${WA_PLUGINS_TOOLCHAIN:-}"
if [[ -z "$toolchain" ]]; then
    if command -v rustup >/dev/null 2>&1 &&
        (cd "$plugins_dir" && rustup target list --installed 2>/dev/null) | grep -qx "$target"; then
        toolchain=rustup
    elif [[ -d "$host_sysroot/lib/rustlib/$target/lib" ]]; then
        toolchain=rustup
    elif [[ -x /usr/bin/rustc && -d /usr/lib/rustlib/src/rust/library ]]; then
        toolchain=debian
    else
        die "no way to build for $target. Either run \`rustup target add $target\`, or install
Debian's rustc-web and rust-web-src (\`apt-get install rustc-web rust-web-src\`)."
    fi
fi

build_env=()
build_flags=()
case "$toolchain" in
rustup) ;;
debian)
    linker="$host_sysroot/lib/rustlib/$host_triple/bin/rust-lld"
    if [[ ! -x "$linker" ]]; then
        linker="$(command -v rust-lld || command -v wasm-ld || true)"
    fi
    [[ -n "$linker" ]] || die "no rust-lld in $host_sysroot and no wasm-ld on PATH (install lld)"
    build_env=(RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$linker")
    build_flags=(-Z build-std=std,panic_abort)
    ;;
*) die "WA_PLUGINS_TOOLCHAIN must be rustup or debian, not '$toolchain'" ;;
esac
echo "plugins/build.sh: building ${plugins[*]} for $target ($toolchain toolchain)"

package_flags=()
for name in "${plugins[@]}"; do
    package_flags+=(-p "$name")
done
env ${build_env[@]+"${build_env[@]}"} cargo build --release --target "$target" \
    --manifest-path "$plugins_dir/Cargo.toml" --target-dir "$wasm_target_dir" \
    ${build_flags[@]+"${build_flags[@]}"} "${package_flags[@]}"

# The componentizer is a native tool: the ordinary toolchain, the ordinary target directory.
# Cargo is skipped when the binary is newer than its sources (a shared target directory's lock
# can be busy for minutes with other builds).
componentize="$target_base/debug/wa-gateway-componentize"
if [[ ! -x "$componentize" ]] ||
    [[ -n "$(find "$plugins_dir/componentize" -path "$plugins_dir/componentize/target" -prune -o \
        -newer "$componentize" -type f -print -quit)" ]]; then
    cargo build --quiet --manifest-path "$plugins_dir/componentize/Cargo.toml" --target-dir "$target_base"
fi

for name in "${plugins[@]}"; do
    module="$wasm_target_dir/$target/release/${name//-/_}.wasm"
    component="$out_dir/$name.wasm"
    [[ -f "$module" ]] || die "$module was not built (is $name a member in plugins/Cargo.toml?)"
    if [[ "$component" -nt "$module" && "$component" -nt "$componentize" ]]; then
        continue
    fi
    "$componentize" "$module" "$component"
done

echo "plugins/build.sh: components in $out_dir:"
for name in "${plugins[@]}" ${js_plugins[@]+"${js_plugins[@]}"} ${py_plugins[@]+"${py_plugins[@]}"}; do
    printf '  %-20s %8d bytes\n' "$name.wasm" "$(wc -c <"$out_dir/$name.wasm")"
done
