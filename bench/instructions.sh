#!/usr/bin/env bash
# CPU instructions per proxied tools/call, for two builds of the gateway: a figure that does not
# move with whatever else the machine is doing (throughput does, by ±20 % on a busy 2-core box).
#
#   bench/instructions.sh BEFORE_DIR AFTER_DIR
#
# Each DIR holds a release `mcp-gateway` and the bench examples (as for bench/compare.sh). Each
# gateway runs under valgrind's callgrind twice, with 0 and with BENCH_CALLS (default 3000)
# sequential keep-alive calls (the 1 KiB tools/call of bench/wrk/post.lua, valid token, memory
# storage); the difference over BENCH_CALLS is the cost of one call, startup and shutdown
# cancelling out. BENCH_AFTER_ENV: NAME=value settings for the after side only (as in
# bench/compare.sh). Not part of CI; prints a table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $# == 2 ]] || { echo "usage: bench/instructions.sh BEFORE_DIR AFTER_DIR" >&2; exit 2; }
SIDE_DIR=([0]="$(cd "$1" && pwd)" [1]="$(cd "$2" && pwd)")
CALLS=${BENCH_CALLS:-3000}
# shellcheck source=bench/run.sh
source bench/run.sh
EX() { echo "${SIDE_DIR[0]}/$1"; }
command -v valgrind >/dev/null || die "valgrind is needed (Debian package valgrind)"

calls() { # url token n: n sequential keep-alive POSTs
    python3 - "$1" "$2" "$3" <<'PY'
import http.client, sys, urllib.parse
url, token, n = urllib.parse.urlsplit(sys.argv[1]), sys.argv[2], int(sys.argv[3])
body = ('{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo",'
        '"arguments":{"text":"' + "x" * 900 + '"},"_meta":{"progressToken":7}}}').encode()
headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "Authorization": "Bearer " + token}
conn = http.client.HTTPConnection(url.hostname, url.port)
for _ in range(n):
    conn.request("POST", url.path, body, headers)
    res = conn.getresponse()
    res.read()
    if res.status != 200:
        sys.exit(f"status {res.status}")
PY
}

measure() { # side n -> total instructions of a run with n calls
    local side=$1 n=$2 config out kv
    local -a extra=()
    [[ $side == 1 ]] && read -r -a extra <<<"${BENCH_AFTER_ENV:-}"
    config=$(gateway_config memory)
    GW_PORT=$(free_port)
    out=$WORK/callgrind.$side.$n
    (
        for kv in "${extra[@]}"; do export "${kv?}"; done
        export MCP_GATEWAY__RUNTIME__SHUTDOWN_TIMEOUT=1 MCP_GATEWAY__RUNTIME__WORKERS=1
        exec env RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out" \
            "${SIDE_DIR[$side]}/mcp-gateway" --config "$config" --port "$GW_PORT"
    ) >"$WORK/gateway-cg.log" 2>&1 &
    GW_PID=$!
    PIDS+=("$GW_PID")
    GW=http://127.0.0.1:$GW_PORT
    wait_http "$GW/health" "$GW_PID" || sleep 20
    wait_http "$GW/health" "$GW_PID" || die "gateway under valgrind did not start: $(tail "$WORK/gateway-cg.log")"
    local token
    token=$("$(EX bench-oauth)" token --gateway "$GW" --service echo) || die "no token"
    calls "$GW/echo/mcp" "$token" "$n" || die "calls failed"
    kill -TERM "$GW_PID"
    wait "$GW_PID" 2>/dev/null || true
    awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

instructions_main() {
    raise_nofile
    start_backend
    log "work dir $WORK; $CALLS calls per run; load average $(cut -d' ' -f1-3 /proc/loadavg)"
    local side zero full name
    printf '| build | instructions per call | calls |\n|---|---|---|\n'
    for side in 0 1; do
        name=$([[ $side == 0 ]] && echo before || echo after)
        zero=$(measure "$side" 0)
        full=$(measure "$side" "$CALLS")
        log "$name: $zero instructions with no calls, $full with $CALLS"
        printf '| %s | %s | %s |\n' "$name" "$(((full - zero) / CALLS))" "$CALLS"
    done
    stop "$BACKEND_PID"
}

instructions_main
