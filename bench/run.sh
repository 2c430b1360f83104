#!/usr/bin/env bash
# mcp-gateway benchmarks: one command, run on a quiet machine from the repository root:
#
#   bench/run.sh
#
# Installs what it needs (wrk, nginx, curl; redis-server when the Redis backend exists), builds the
# gateway and the bench helpers in release mode, runs every benchmark side by side (the
# targets of one measurement alternate within each round) and writes bench/RESULTS.md.
# Not part of CI; nothing here asserts a time.
#
# Knobs (environment): BENCH_DURATION seconds per wrk run (10), BENCH_ROUNDS (3),
# BENCH_CONNS ("1 32 256"), BENCH_STREAMS open SSE streams (10000), BENCH_CODES (2000),
# BENCH_CHAINS (64) x BENCH_ROTATIONS (100), BENCH_REGISTRATIONS (2000),
# BENCH_PROFILE (release|debug), BENCH_OUT (bench/RESULTS.md), BENCH_NO_BUILD=1.
# BENCH_QUICK=1 is a smoke run of a few seconds per part that writes to a temporary file.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
    d_dur=1 d_rounds=1 d_streams=300 d_codes=100 d_chains=8 d_rot=10 d_reg=100 d_sse_events=1
else
    d_dur=10 d_rounds=3 d_streams=10000 d_codes=2000 d_chains=64 d_rot=100 d_reg=2000 d_sse_events=3
fi
DURATION=${BENCH_DURATION:-$d_dur}
ROUNDS=${BENCH_ROUNDS:-$d_rounds}
CONNS=${BENCH_CONNS:-"1 32 256"}
STREAMS=${BENCH_STREAMS:-$d_streams}
CODES=${BENCH_CODES:-$d_codes}
CHAINS=${BENCH_CHAINS:-$d_chains}
ROTATIONS=${BENCH_ROTATIONS:-$d_rot}
REGISTRATIONS=${BENCH_REGISTRATIONS:-$d_reg}
SSE_ROUNDS=${BENCH_SSE_ROUNDS:-$d_sse_events}
PROFILE=${BENCH_PROFILE:-release}
BENCH_CMD="$(env | grep '^BENCH_' | sort | tr '\n' ' ' || true)bench/run.sh"
WORK=$(mktemp -d /tmp/mcp-bench.XXXXXX)
if [[ $QUICK == 1 ]]; then OUT=${BENCH_OUT:-$WORK/RESULTS.md}; else OUT=${BENCH_OUT:-$ROOT/bench/RESULTS.md}; fi
RAW=$WORK/raw.tsv   # section <TAB> case <TAB> param <TAB> metric <TAB> value, one per round
: >"$RAW"

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- processes we start ----
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop "$pid"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop() { # stop one process we started, by its id; no 30 s graceful drain of idle keep-alives
    local i
    kill "$1" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# ---------------------------------------------------------------------- preparation ----
install_tools() {
    local need=()
    command -v wrk >/dev/null || need+=(wrk)
    command -v nginx >/dev/null || need+=(nginx)
    command -v curl >/dev/null || need+=(curl)
    if [[ -f src/storage/redis.rs ]] && ! command -v redis-server >/dev/null; then need+=(redis-server); fi
    ((${#need[@]} == 0)) && return
    log "installing ${need[*]}"
    command -v apt-get >/dev/null || die "need ${need[*]} (no apt-get here)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >"$WORK/apt.log" 2>&1; then
        apt-get update >>"$WORK/apt.log" 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >>"$WORK/apt.log" 2>&1 ||
            die "apt-get install ${need[*]} failed, see $WORK/apt.log"
    fi
}

raise_nofile() {
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    NOFILE=$(ulimit -n)
    # The gateway holds two sockets per open stream (client side and backend side).
    MAX_STREAMS=$(((NOFILE - 200) / 2))
    if ((STREAMS > MAX_STREAMS)); then
        log "open-file limit $NOFILE (hard limit) allows $MAX_STREAMS streams, not $STREAMS"
        STREAMS_NOTE="The open-file hard limit here is $NOFILE and cannot be raised (no CAP_SYS_RESOURCE), so $MAX_STREAMS streams were opened instead of $STREAMS; RSS is also given per stream."
        STREAMS=$MAX_STREAMS
    fi
}

build() {
    [[ ${BENCH_NO_BUILD:-0} == 1 ]] && return
    local flag=()
    [[ $PROFILE == release ]] && flag=(--release)
    log "cargo build ${flag[*]} (gateway + bench helpers)"
    cargo build "${flag[@]}" --bin mcp-gateway --example bench-backend --example bench-sse --example bench-oauth \
        --example bench-floor \
        >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; die "build failed"; }
}

BIN_DIR() { echo "${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE"; }
GATEWAY_BIN() { echo "$(BIN_DIR)/mcp-gateway"; }
EX() { echo "$(BIN_DIR)/examples/$1"; }

free_port() { "$(EX bench-sse)" port; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

wait_http() { # url, pid: wait until the URL answers (up to 20 s) while the process lives
    local i
    for ((i = 0; i < 400; i++)); do
        curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# ---------------------------------------------------------------------------- servers ----
start_backend() {
    local exe
    exe=$(EX bench-backend)
    : >"$WORK/backend.out"
    "$exe" --port 0 >"$WORK/backend.out" 2>&1 &
    BACKEND_PID=$!
    PIDS+=("$BACKEND_PID")
    local i
    for ((i = 0; i < 200; i++)); do
        BACKEND_PORT=$(awk '/^listening/ {split($2, a, ":"); print a[2]}' "$WORK/backend.out" || true)
        [[ -n $BACKEND_PORT ]] && break
        sleep 0.05
    done
    [[ -n ${BACKEND_PORT:-} ]] || die "backend did not start: $(cat "$WORK/backend.out")"
    wait_http "http://127.0.0.1:$BACKEND_PORT/health" "$BACKEND_PID" || die "backend not healthy"
    log "backend on $BACKEND_PORT"
}

start_nginx() {
    local prefix=$WORK/nginx
    mkdir -p "$prefix"
    NGINX_PORT=$(free_port)
    sed -e "s#__PREFIX__#$prefix#g" -e "s#__WORKERS__#$(nproc)#" -e "s#__NOFILE__#$NOFILE#" \
        -e "s#__BACKEND_PORT__#$BACKEND_PORT#" -e "s#__NGINX_PORT__#$NGINX_PORT#" \
        bench/nginx.conf >"$prefix/nginx.conf"
    nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" >"$prefix/out.log" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    wait_http "http://127.0.0.1:$NGINX_PORT/health" "$NGINX_PID" ||
        die "nginx did not start: $(cat "$prefix/error.log" "$prefix/out.log" 2>/dev/null)"
    log "nginx on $NGINX_PORT"
}

start_floor() { # bench-floor (bench/floor.rs): actix-web + the gateway's backend client, nothing else
    FLOOR_PORT=$(free_port)
    "$(EX bench-floor)" --port "$FLOOR_PORT" --backend "http://127.0.0.1:$BACKEND_PORT" >"$WORK/floor.log" 2>&1 &
    FLOOR_PID=$!
    PIDS+=("$FLOOR_PID")
    wait_http "http://127.0.0.1:$FLOOR_PORT/health" "$FLOOR_PID" || die "bench-floor did not start: $(cat "$WORK/floor.log")"
    log "floor on $FLOOR_PORT"
}

gateway_config() { # storage kind -> path of the config file
    local kind=$1 file=$WORK/gateway-$1.yaml storage secret
    secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    if [[ $kind == redis ]]; then
        storage="  type: redis\n  redis:\n    url: redis://127.0.0.1:6379\n    key_prefix: \"mcp-gateway-bench:$$:\""
    else
        storage="  type: memory"
    fi
    sed -e "s#__SESSION_SECRET__#$secret#" -e "s#__BACKEND_PORT__#$BACKEND_PORT#g" \
        -e "s#__STORAGE__#$storage#" bench/gateway.yaml >"$file"
    echo "$file"
}

start_gateway() { # storage kind; sets GW_PID, GW_PORT, GW
    local config
    config=$(gateway_config "$1")
    GW_PORT=$(free_port)
    # Access logging off (warn), as for nginx: the benchmark measures the proxy, not the log.
    RUST_LOG=${BENCH_GATEWAY_LOG:-warn} "$(GATEWAY_BIN)" --config "$config" --port "$GW_PORT" \
        >"$WORK/gateway-$1.log" 2>&1 &
    GW_PID=$!
    PIDS+=("$GW_PID")
    GW=http://127.0.0.1:$GW_PORT
    wait_http "$GW/health" "$GW_PID" || die "gateway ($1) did not start: $(tail -20 "$WORK/gateway-$1.log")"
    log "gateway ($1 storage) on $GW_PORT, pid $GW_PID"
}

redis_up() {
    [[ -f src/storage/redis.rs ]] || return 1
    if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then return 0; fi
    command -v redis-server >/dev/null || return 1
    redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
    PIDS+=("$!")
    local i
    for ((i = 0; i < 100; i++)); do
        redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG && return 0
        sleep 0.05
    done
    return 1
}

# ----------------------------------------------------------------------- measurements ----
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$RAW"; }

record_result() { # section case param "RESULT k=v ..." [metric-prefix]
    local kv
    for kv in ${4#RESULT }; do record "$1" "$2" "$3" "${kv%%=*}" "${kv#*=}"; done
}

run_wrk() { # case conns url token [pid to sample]
    local case=$1 conns=$2 url=$3 token=$4 pid=${5:-} threads=2 line rss=0 wrk_pid
    ((conns < threads)) && threads=$conns
    BENCH_TOKEN=$token BENCH_FORGE=${FORGE:-0} wrk -t"$threads" -c"$conns" -d"${DURATION}s" --timeout 10s --latency \
        -s "$ROOT/bench/wrk/post.lua" "$url" >"$WORK/wrk.out" 2>&1 &
    wrk_pid=$!
    if [[ -n $pid ]]; then
        sleep "$(awk -v d="$DURATION" 'BEGIN {print d / 2}')"
        rss=$(rss_kib "$pid")
    fi
    wait "$wrk_pid" || true
    line=$(grep '^RESULT' "$WORK/wrk.out" || true)
    [[ -n $line ]] || die "wrk gave no result for $case/$conns: $(cat "$WORK/wrk.out")"
    record_result http "$case" "$conns" "$line"
    [[ -n $pid ]] && record http "$case" "$conns" rss_kib "$rss"
    log "  $case c=$conns: $(echo "$line" | cut -d' ' -f4-7)"
}

bench_http() {
    local r conns i cases
    local -A url token pid
    url=([direct]="http://127.0.0.1:$BACKEND_PORT/mcp" [nginx]="http://127.0.0.1:$NGINX_PORT/mcp"
        [gateway]="$GW/echo/mcp" [invalid_token]="$GW/echo/mcp" [forged]="$GW/echo/mcp" [no_auth]="$GW/open/mcp"
        [floor]="http://127.0.0.1:$FLOOR_PORT/mcp")
    token=([direct]="" [nginx]="" [gateway]="$TOKEN" [invalid_token]="$INVALID_TOKEN" [forged]="$TOKEN" [no_auth]=""
        [floor]="")
    pid=([direct]="" [nginx]="" [gateway]="$GW_PID" [invalid_token]="$GW_PID" [forged]="$GW_PID" [no_auth]="$GW_PID"
        [floor]="")
    cases=(direct nginx gateway invalid_token no_auth forged floor)
    log "warm-up"
    for i in "${cases[@]}"; do
        BENCH_TOKEN=${token[$i]} wrk -t2 -c32 -d1s -s bench/wrk/post.lua "${url[$i]}" >/dev/null 2>&1 || true
    done
    for ((r = 1; r <= ROUNDS; r++)); do
        for conns in $CONNS; do
            log "round $r/$ROUNDS, $conns connections"
            # Rotate the order each round so no target always runs first or last.
            for ((i = 0; i < ${#cases[@]}; i++)); do
                local c=${cases[$(((i + r - 1) % ${#cases[@]}))]} FORGE=0
                [[ $c == forged ]] && FORGE=1
                FORGE=$FORGE run_wrk "$c" "$conns" "${url[$c]}" "${token[$c]}" "${pid[$c]}"
            done
        done
    done
}

bench_sse_latency() {
    local r streams c line
    local -A url token
    url=([direct]="http://127.0.0.1:$BACKEND_PORT/sse/500/2" [nginx]="http://127.0.0.1:$NGINX_PORT/sse/500/2"
        [gateway]="$GW/sse/mcp")
    token=([direct]="" [nginx]="" [gateway]="$SSE_TOKEN")
    for ((r = 1; r <= SSE_ROUNDS; r++)); do
        for streams in 1 50; do
            for c in direct nginx gateway; do
                line=$("$(EX bench-sse)" latency --url "${url[$c]}" --token "${token[$c]}" --streams "$streams") ||
                    die "bench-sse latency $c failed"
                record_result sse "$c" "$streams" "$line"
                log "  sse $c streams=$streams: $(echo "$line" | cut -d' ' -f4-6)"
            done
        done
    done
}

bench_hold() {
    local line
    log "opening $STREAMS SSE streams through the gateway"
    line=$("$(EX bench-sse)" hold --url "$GW/hold/mcp" --token "$HOLD_TOKEN" --streams "$STREAMS" \
        --pid "$GW_PID" --hold-secs 5 --timeout-secs 120) || die "bench-sse hold failed"
    record_result hold gateway "$STREAMS" "$line"
    log "  $line"
    # The same streams through bench-floor: what actix-web and the backend client alone hold.
    log "opening $STREAMS SSE streams through bench-floor"
    line=$("$(EX bench-sse)" hold --url "http://127.0.0.1:$FLOOR_PORT/hold" --token "" --streams "$STREAMS" \
        --pid "$FLOOR_PID" --hold-secs 5 --timeout-secs 120) || die "bench-sse hold (floor) failed"
    record_result hold floor "$STREAMS" "$line"
    log "  $line"
}

bench_oauth() { # storage kind [section [case]]: ROUNDS runs, recorded as section/case (token/kind)
    local r line section=${2:-token} case=${3:-$1}
    for ((r = 1; r <= ROUNDS; r++)); do
        "$(EX bench-oauth)" bench --gateway "$GW" --service echo --codes "$CODES" --chains "$CHAINS" \
            --rotations "$ROTATIONS" --registrations "$REGISTRATIONS" --concurrency 32 \
            >"$WORK/oauth.out" 2>"$WORK/oauth.err" || die "bench-oauth ($1) failed: $(cat "$WORK/oauth.err")"
        while read -r line; do
            local phase=${line#RESULT phase=}
            phase=${phase%% *}
            record_result "$section" "$case" "$phase" "$line"
            log "  $section $case $phase: $(echo "$line" | cut -d' ' -f3-6)"
        done < <(grep '^RESULT' "$WORK/oauth.out")
    done
}

bench_sdk_latency() { # the SDK-backend row (bench/sdk_latency.sh), only when its virtualenv exists
    if [[ ! -x $ROOT/tests/e2e/.venv/bin/python ]]; then
        SDK_NOTE="Not measured: tests/e2e/.venv (the Python SDK, created by scripts/test.sh) does not exist."
        log "skipping the SDK latency row: $SDK_NOTE"
        return
    fi
    # sdk_latency.sh wants the gateway and bench-oauth side by side.
    mkdir -p "$WORK/sdk-bin"
    ln -sf "$(GATEWAY_BIN)" "$WORK/sdk-bin/mcp-gateway"
    ln -sf "$(EX bench-oauth)" "$WORK/sdk-bin/bench-oauth"
    BENCH_CALLS=${BENCH_SDK_CALLS:-300} BENCH_ROUNDS=$ROUNDS "$ROOT/bench/sdk_latency.sh" "$WORK/sdk-bin" \
        >"$WORK/sdk.md" 2>"$WORK/sdk.err" || { SDK_NOTE="sdk_latency.sh failed: $(tail -3 "$WORK/sdk.err")"; return; }
    log "  sdk latency: $(tail -1 "$WORK/sdk.md")"
}

bench_startup() {
    local config port line
    config=$(gateway_config memory)
    port=$(free_port)
    line=$(RUST_LOG=warn "$(EX bench-sse)" startup --bin "$(GATEWAY_BIN)" --port "$port" --runs 7 -- \
        --config "$config" --port "$port") || die "startup measurement failed"
    record_result startup gateway memory "$line"
    log "  startup: $line"
}

# ------------------------------------------------------------------------------ main ----
main() {
    install_tools
    raise_nofile
    build
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    log "work dir $WORK; load average $LOAD_BEFORE"

    start_backend
    bench_startup
    start_nginx
    start_floor
    start_gateway memory
    record process gateway memory idle_rss_kib "$(rss_kib "$GW_PID")"
    TOKEN=$("$(EX bench-oauth)" token --gateway "$GW" --service echo) || die "no token (echo)"
    SSE_TOKEN=$("$(EX bench-oauth)" token --gateway "$GW" --service sse) || die "no token (sse)"
    HOLD_TOKEN=$("$(EX bench-oauth)" token --gateway "$GW" --service hold) || die "no token (hold)"
    # Same header and claims, last signature characters changed: the full check runs and fails.
    INVALID_TOKEN="${TOKEN%??????}AAAAAA"
    [[ $INVALID_TOKEN != "$TOKEN" ]] || INVALID_TOKEN="${TOKEN%??????}BBBBBB"

    bench_http
    bench_sse_latency
    bench_sdk_latency
    bench_hold
    sleep 2
    record process gateway memory after_load_rss_kib "$(rss_kib "$GW_PID")"
    bench_oauth memory
    stop "$GW_PID"

    if redis_up; then
        start_gateway redis
        bench_oauth redis
        stop "$GW_PID"
        REDIS_DONE=1
    else
        REDIS_DONE=0
        log "Redis backend not on this branch or Redis not reachable: token benchmarks on memory only"
    fi
    stop "$NGINX_PID"
    stop "$FLOOR_PID"
    stop "$BACKEND_PID"
    # shellcheck source=bench/report.sh
    source "$ROOT/bench/report.sh"
    report >"$OUT"
    log "results: $OUT (raw: $RAW)"
}

# Sourcing the file (for a partial run by hand) defines the functions without running.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
