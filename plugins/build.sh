#!/usr/bin/env bash
# Builds wa-gateway's plugins into WebAssembly components: target/plugins/<name>.wasm.
#
#   plugins/build.sh            # every plugin crate under plugins/
#   plugins/build.sh echo trap  # only these
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
if (($# > 0)); then
    plugins=("$@")
    for name in "${plugins[@]}"; do
        [[ " ${all_plugins[*]} " == *" $name "* ]] || die "no plugin crate plugins/$name (have: ${all_plugins[*]})"
    done
else
    plugins=("${all_plugins[@]}")
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

mkdir -p "$out_dir"
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
for name in "${plugins[@]}"; do
    printf '  %-20s %8d bytes\n' "$name.wasm" "$(wc -c <"$out_dir/$name.wasm")"
done
