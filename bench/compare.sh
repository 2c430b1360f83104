#!/usr/bin/env bash
# Two builds of the gateway side by side, for a change that must not cost throughput (a
# refactor): the proxied tools/call with a valid token at 32 and 256 connections, and the token
# endpoint (code redemptions, refresh rotations, registrations) on memory and on Redis.
#
#   bench/compare.sh BEFORE_DIR AFTER_DIR
#
# Each DIR holds a release `mcp-gateway` and the `bench-backend`, `bench-sse` and `bench-oauth`
# examples of that build (e.g. copied out of target/release and target/release/examples). The
# two builds alternate within every round, in turn first, against one backend. Prints a table
# of medians. Knobs as for bench/run.sh: BENCH_DURATION, BENCH_ROUNDS, BENCH_CONNS, BENCH_CODES,
# BENCH_CHAINS, BENCH_ROTATIONS, BENCH_REGISTRATIONS; BENCH_AFTER_ENV, space-separated
# NAME=value settings for the after side's gateway only (a feature the before build does not
# know, e.g. MCP_GATEWAY__METRICS__LISTEN=127.0.0.1:19464). Not part of CI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $# == 2 ]] || { echo "usage: bench/compare.sh BEFORE_DIR AFTER_DIR" >&2; exit 2; }
SIDE_DIR=([0]="$(cd "$1" && pwd)" [1]="$(cd "$2" && pwd)")
SIDE_NAME=([0]=before [1]=after)
BENCH_CONNS=${BENCH_CONNS:-"32 256"}
# shellcheck source=bench/run.sh
source bench/run.sh
# The helpers of the first build drive both gateways; the gateway binary is per side.
SIDE=0
BIN_DIR() { echo "${SIDE_DIR[0]}"; }
EX() { echo "${SIDE_DIR[0]}/$1"; }
GATEWAY_BIN() { echo "${SIDE_DIR[$SIDE]}/mcp-gateway"; }

side_gateway() { # side storage
    SIDE=$1
    local -a extra=()
    [[ $1 == 1 ]] && read -r -a extra <<<"${BENCH_AFTER_ENV:-}"
    local kv
    for kv in "${extra[@]}"; do export "${kv?}"; done
    start_gateway "$2"
    for kv in "${extra[@]}"; do unset "${kv%%=*}"; done
}

one_side() { # side round
    local side=$1 name=${SIDE_NAME[$1]} conns token line
    side_gateway "$side" memory
    token=$("$(EX bench-oauth)" token --gateway "$GW" --service echo) || die "no token ($name)"
    BENCH_TOKEN=$token wrk -t2 -c32 -d1s -s bench/wrk/post.lua "$GW/echo/mcp" >/dev/null 2>&1 || true
    for conns in $CONNS; do run_wrk "$name" "$conns" "$GW/echo/mcp" "$token"; done
    ROUNDS=1 bench_oauth memory token-memory "$name"
    stop "$GW_PID"
    if [[ $REDIS == 1 ]]; then
        side_gateway "$side" redis
        ROUNDS=1 bench_oauth redis token-redis "$name"
        stop "$GW_PID"
    fi
}

compare_main() {
    install_tools
    raise_nofile
    log "work dir $WORK; load average $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
    REDIS=0
    redis_up && REDIS=1
    start_backend
    local r
    for ((r = 1; r <= ROUNDS; r++)); do
        log "round $r/$ROUNDS"
        one_side $(((r + 1) % 2)) "$r"
        one_side $((r % 2)) "$r"
    done
    stop "$BACKEND_PID"
    # Medians per (section, case, param, metric); then one row per measurement.
    sort -t$'\t' -k1,4 "$RAW" | awk -F'\t' '
        function flush() { if (n) { m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2; print key "\t" m } n = 0 }
        { k = $1 "\t" $2 "\t" $3 "\t" $4; if (k != key) { flush(); key = k } v[++n] = $5 }
        END { flush() }' | sort -t$'\t' -k1,1 -k3,3 -k4,4 -k2,2 >"$WORK/medians.tsv"
    printf '| what | param | metric | before | after | after/before |\n|---|---|---|---|---|---|\n'
    awk -F'\t' '$4 == "rps" || $4 == "per_sec" || $4 == "p99_us" {
            k = $1 "\t" $3 "\t" $4; val[k, $2] = $5; keys[k] = 1 }
        END { for (k in keys) { split(k, p, "\t"); b = val[k, "before"]; a = val[k, "after"];
            printf "| %s | %s | %s | %s | %s | %s |\n", p[1], p[2], p[3], b, a, (b > 0 ? sprintf("%.2f", a / b) : "-") } }' \
        "$WORK/medians.tsv" | sort
    log "raw: $RAW"
}

compare_main
