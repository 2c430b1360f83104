#!/usr/bin/env bash
# Added latency of one sequential keep-alive `tools/call` through the gateway, against the
# official Python SDK backend (tests/e2e/py/backend.py), once answering with its chunked
# `text/event-stream` (the most common MCP call path, and the one Nagle's algorithm stalls when
# the proxy writes small pieces without TCP_NODELAY, issue 14) and once with its JSON answer
# sent chunked in 64-byte writes (`--answer chunked-json`).
#
#   bench/sdk_latency.sh [DIR …]
#
# Each DIR holds a release `mcp-gateway` and `bench-oauth` (default: this checkout's release
# build). Direct calls and each build alternate within every round; prints p50/p99 per target
# and the gateway's added p50/p99 over direct. Knobs: BENCH_CALLS (500), BENCH_ROUNDS (3),
# BENCH_SDK_ANSWERS ("sse chunked-json").
# Not part of CI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CALLS=${BENCH_CALLS:-500}
ROUNDS=${BENCH_ROUNDS:-3}
# How the SDK backend answers: its default SSE stream, and JSON sent chunked in small writes.
ANSWERS=${BENCH_SDK_ANSWERS:-"sse chunked-json"}
target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
DIRS=("$@")
[[ ${#DIRS[@]} -gt 0 ]] || DIRS=("$target_dir/release")
WORK=$(mktemp -d /tmp/mcp-sdk-latency.XXXXXX)
PIDS=()
log() { printf '[sdk-latency %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# The SDK, as the end-to-end tests install it (tests/e2e/.venv, pinned requirements).
venv=$ROOT/tests/e2e/.venv
if [[ ! -x $venv/bin/python ]] || ! cmp -s <(sha256sum <tests/e2e/py/requirements.txt | cut -d' ' -f1) \
    <(cat "$venv/.requirements.sha256" 2>/dev/null); then
    log "installing the Python SDK into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r tests/e2e/py/requirements.txt
    sha256sum <tests/e2e/py/requirements.txt | cut -d' ' -f1 >"$venv/.requirements.sha256"
fi
py=$venv/bin/python

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

measure() { # answer: sse | chunked-json; prints the table rows of that answer
    local answer=$1 first=${#PIDS[@]} BACKEND BACKEND_PORT port i r line d50 d99 g50 g99
    "$py" tests/e2e/py/backend.py --answer "$answer" >"$WORK/backend-$answer.out" 2>"$WORK/backend-$answer.err" &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q '"ready"' "$WORK/backend-$answer.out" 2>/dev/null && break; sleep 0.1; done
    BACKEND=$(head -1 "$WORK/backend-$answer.out" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["ready"])')
    log "SDK backend ($answer) at $BACKEND"
    local -a GW TOKEN
    for i in "${!DIRS[@]}"; do
        port=$(free_port)
        cat >"$WORK/gw-$answer-$i.yaml" <<YAML
host: 127.0.0.1
session_secret: "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
oauth_providers:
  dev: {}
tokens:
  access_token_ttl: 86400
mcp_services:
  sdk:
    name: SDK backend
    url: $BACKEND
    oauth_provider: dev
YAML
        RUST_LOG=warn "${DIRS[$i]}/mcp-gateway" --config "$WORK/gw-$answer-$i.yaml" --port "$port" \
            >"$WORK/gw-$answer-$i.log" 2>&1 &
        PIDS+=($!)
        for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
        GW[$i]="http://127.0.0.1:$port/sdk/mcp"
        TOKEN[$i]=$("${DIRS[$i]}/bench-oauth" token --gateway "http://127.0.0.1:$port" --service sdk)
        log "gateway $i (${DIRS[$i]}) on $port"
    done

    local -A p50 p99
    for ((r = 1; r <= ROUNDS; r++)); do
        line=$("$py" bench/sdk_latency.py "$BACKEND" "" "$CALLS")
        p50[direct]+=" $(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$line")"
        p99[direct]+=" $(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$line")"
        log "$answer round $r direct: $line"
        for i in "${!DIRS[@]}"; do
            line=$("$py" bench/sdk_latency.py "${GW[$i]}" "${TOKEN[$i]}" "$CALLS")
            p50[$i]+=" $(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$line")"
            p99[$i]+=" $(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$line")"
            log "$answer round $r gateway $i: $line"
        done
    done
    d50=$(median "${p50[direct]}"); d99=$(median "${p99[direct]}")
    echo "| direct (SDK backend, $answer) | $d50 | $d99 | | |"
    for i in "${!DIRS[@]}"; do
        g50=$(median "${p50[$i]}"); g99=$(median "${p99[$i]}")
        echo "| gateway ${DIRS[$i]}, $answer | $g50 | $g99 | $(awk -v a="$g50" -v b="$d50" 'BEGIN{printf "%+.3f", a-b}') | $(awk -v a="$g99" -v b="$d99" 'BEGIN{printf "%+.3f", a-b}') |"
    done
    for p in "${PIDS[@]:$first}"; do kill "$p" 2>/dev/null || true; done
}

echo "| target | p50 ms | p99 ms | added p50 ms | added p99 ms |"
echo "|---|---:|---:|---:|---:|"
for answer in $ANSWERS; do
    measure "$answer"
done
