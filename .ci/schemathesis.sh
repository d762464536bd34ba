#!/usr/bin/env bash
# Contract tests of the served OpenAPI document with schemathesis (PyPI): a gateway with the
# simulator driver runs on a free port over a fresh database, gets a tenant with a connected
# device and one of everything (rule, webhook, schedule, plugin, messages), and schemathesis
# sends generated requests to every operation, failing on any 5xx or answer the document does
# not describe.
#
#   .ci/schemathesis.sh [sqlite|postgres|both]      (default: both)
#
# Environment:
#   GATEWAY_BIN       the gateway binary (default: $CARGO_TARGET_DIR/debug/wa-gateway, brought
#                     up to date with `cargo build`)
#   PG_URL            PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres);
#                     each run creates its own database and drops it
#   ST_MAX_EXAMPLES   generated cases per operation and phase (default 25)
#   ST_SEED           the generator's seed (default fixed, so a run repeats exactly; set another
#                     number, or `random`, to explore)
#   ST_CACHE          where schemathesis is installed (default ~/.cache/wa-gateway-schemathesis)
#   ST_KEEP           set to keep the run folder (gateway log, reports) after a failure
#   ST_ARGS           more arguments for `schemathesis run`, e.g. ST_ARGS="--max-failures 1"
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
here="$(pwd)"
SCHEMATHESIS_VERSION="4.32.5"
backends="${1:-both}"
case "$backends" in
    sqlite | postgres) ;;
    both) backends="sqlite postgres" ;;
    *) echo "usage: $0 [sqlite|postgres|both]" >&2; exit 2 ;;
esac
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
max_examples="${ST_MAX_EXAMPLES:-25}"
seed="${ST_SEED:-20261206}"

# schemathesis in its own virtual environment, reused by later runs.
cache="${ST_CACHE:-$HOME/.cache/wa-gateway-schemathesis}"
venv="$cache/venv-$SCHEMATHESIS_VERSION"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
py="$venv/bin/python"

if [ -z "${GATEWAY_BIN:-}" ]; then
    # Up to date with the checkout (a no-op after `cargo test`, which builds it too).
    cargo build --quiet --bin wa-gateway
    GATEWAY_BIN="${CARGO_TARGET_DIR:-$here/target}/debug/wa-gateway"
fi

run_dir=""
gateway_pid=""
pg_db=""
cleanup() {
    if [ -n "$gateway_pid" ]; then
        kill "$gateway_pid" 2>/dev/null || true
        wait "$gateway_pid" 2>/dev/null || true
        gateway_pid=""
    fi
    if [ -n "$pg_db" ]; then
        psql "$PG_URL" -qc "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >/dev/null 2>&1 || true
        pg_db=""
    fi
}
trap cleanup EXIT

# One run: a gateway on `$1`'s database, the fixtures, then schemathesis.
run_backend() {
    local backend="$1" port db_url admin_token
    run_dir="$(mktemp -d "${TMPDIR:-/tmp}/wag-schemathesis-$backend.XXXXXX")"
    port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    admin_token="st-admin-$RANDOM$RANDOM$RANDOM"
    if [ "$backend" = postgres ]; then
        pg_db="wag_st_$(date +%s)_$RANDOM"
        psql "$PG_URL" -qc "CREATE DATABASE \"$pg_db\""
        db_url="${PG_URL%/*}/$pg_db"
    else
        db_url="sqlite:$run_dir/gateway.db"
    fi
    # Webhook targets on loopback are allowed so the fixtures can register an endpoint (it
    # points at a closed port: every delivery fails fast and is logged).
    cat >"$run_dir/gateway.toml" <<EOF
[server]
bind = "127.0.0.1:$port"
public_url = "http://127.0.0.1:$port"
request_timeout = 30
[database]
url = "$db_url"
[admin]
token = "$admin_token"
[whatsapp]
driver = "simulator"
send_min_gap_ms = 0
send_jitter_ms = 0
send_wait_timeout = 5
media_fetch_timeout = 2
[webhooks]
allow_private_targets = true
timeout = 2
[log]
level = "warn"
EOF
    "$GATEWAY_BIN" --config "$run_dir/gateway.toml" serve >"$run_dir/gateway.log" 2>&1 &
    gateway_pid=$!
    local base="http://127.0.0.1:$port"
    for _ in $(seq 1 100); do
        "$py" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
            "$base/readyz" >/dev/null 2>&1 && break
        kill -0 "$gateway_pid" 2>/dev/null || { cat "$run_dir/gateway.log" >&2; return 1; }
        sleep 0.2
    done
    local api_key
    api_key="$("$py" "$here/.ci/schemathesis_fixtures.py" "$base" "$admin_token" "$here/target/plugins/echo.wasm")"

    local st=("$venv/bin/schemathesis" --config-file "$here/.ci/schemathesis.toml" run "$base/openapi.json")
    local common=(
        --checks all
        --max-examples "$max_examples"
        # One worker: with two, Python 3.11's `ast.parse` (hypothesis describing its
        # strategies) fails now and then with "AST constructor recursion depth mismatch".
        --workers 1
        --request-timeout 20
        --report junit --report-dir "$run_dir/report"
    )
    [ "$seed" = random ] || common+=(--seed "$seed")
    # shellcheck disable=SC2206 # ST_ARGS is a list of words on purpose.
    common+=(${ST_ARGS:-})
    local status=0
    echo "==> schemathesis on $backend: tenant operations"
    # Left out: revoking an API key, which could revoke the key the run uses (tests/api/
    # account.rs covers it).
    "${st[@]}" "${common[@]}" \
        -H "x-api-key: $api_key" \
        --include-path-regex '^/api/(user/|send-message$|send-media$|reset-session$)' \
        --exclude-operation-id delete_api_key || status=1
    echo "==> schemathesis on $backend: admin and simulator operations"
    "${st[@]}" "${common[@]}" \
        -H "Authorization: Bearer $admin_token" \
        --include-path-regex '^/api/admin/' || status=1
    if grep -q "panicked" "$run_dir/gateway.log"; then
        echo "the gateway panicked:" >&2
        grep -A5 "panicked" "$run_dir/gateway.log" >&2
        status=1
    fi
    # A 500 says only "internal error" to the client; the cause is in the gateway's log.
    if [ "$status" -ne 0 ] && grep -q "internal error" "$run_dir/gateway.log"; then
        echo "internal errors in the gateway's log:" >&2
        grep "internal error" "$run_dir/gateway.log" | head -20 >&2
    fi
    cleanup
    if [ "$status" -ne 0 ] && [ -n "${ST_KEEP:-}" ]; then
        echo "kept $run_dir (gateway.log, report/)"
    else
        rm -rf "$run_dir"
    fi
    return "$status"
}

failed=()
for backend in $backends; do
    run_backend "$backend" || failed+=("$backend")
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "schemathesis FAILED on: ${failed[*]}"
    exit 1
fi
echo "schemathesis passed on: $backends"
