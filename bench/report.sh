# shellcheck shell=bash
# Writes RESULTS.md (markdown, stdout) from the raw measurements of bench/run.sh.
# Sourced by run.sh; uses its variables (RAW, WORK, DURATION, ROUNDS, ...).
# Every figure is the median over the rounds; ratios are computed from those medians.

# Median per (section, case, param, metric) of the numeric values.
medians() {
    awk -F'\t' '$5 ~ /^-?[0-9.]+$/' "$RAW" | sort -t$'\t' -k1,4 -k5,5g |
        awk -F'\t' '
            function flush() { if (n) printf "%s\t%s\n", key, v[int((n + 1) / 2)] }
            { k = $1 "\t" $2 "\t" $3 "\t" $4; if (k != key) { flush(); key = k; n = 0 } v[++n] = $5 }
            END { flush() }'
}

# get SECTION CASE PARAM METRIC -> median, or empty
get() { awk -F'\t' -v s="$1" -v c="$2" -v p="$3" -v m="$4" '$1==s && $2==c && $3==p && $4==m {print $5}' "$MED"; }

# calc FORMAT EXPR A [B [C]]: printf FORMAT of EXPR over a, b, c; a b ... bound to $1 $2 ...: awk arithmetic, "–" when an input is missing
calc() {
    local fmt=$1 expr=$2
    shift 2
    local x
    for x in "$@"; do [[ -z $x ]] && { echo "–"; return; }; done
    # Division by zero is fatal in awk: then "–".
    awk -v fmt="$fmt" -v a="${1:-0}" -v b="${2:-0}" -v c="${3:-0}" "BEGIN { printf fmt, $expr }" 2>/dev/null || echo "–"
}

ms() { calc '%.2f' 'a / 1000' "$1"; }
mib() { calc '%.1f' 'a / 1024' "$1"; }

# verdict ACTUAL OP LIMIT -> met / MISSED / not measured
verdict() {
    [[ -z $1 || $1 == "–" ]] && { echo "not measured"; return; }
    awk -v a="$1" -v l="$3" -v op="$2" 'BEGIN { ok = (op == "<=") ? (a <= l) : (a >= l); print ok ? "met" : "**missed**" }'
}

machine() {
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores online"
    echo "- Memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "- Kernel: $(uname -sr)"
    echo "- Load average before the run: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- Gateway commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown), profile $PROFILE; $(rustc --version 2>/dev/null)"
    echo "- Tools: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(nginx -v 2>&1 | cut -d' ' -f3)"
    echo "- Open-file limit: $NOFILE"
}

# A warning when something else was using the CPU as the run started.
busy_note() {
    awk -v l="${LOAD_BEFORE%% *}" -v n="$(nproc)" 'BEGIN { if (l > 0.5 * n) printf "**Not a quiet run**: the 1-minute load average was %s before it started (other work on the machine); treat these figures as rough and rerun `bench/run.sh` on a quiet machine.\n\n", l }'
}

http_table() {
    local conns c rps p50 p99 p999
    echo "| conns | target | req/s | × nginx | × direct | p50 ms | p99 ms | p99.9 ms | p99 added vs direct ms | non-2xx | socket errors |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for conns in $CONNS; do
        local d_rps n_rps d_p99
        d_rps=$(get http direct "$conns" rps)
        n_rps=$(get http nginx "$conns" rps)
        d_p99=$(get http direct "$conns" p99_us)
        for c in direct nginx gateway invalid_token no_auth forged floor; do
            rps=$(get http "$c" "$conns" rps)
            p50=$(get http "$c" "$conns" p50_us)
            p99=$(get http "$c" "$conns" p99_us)
            p999=$(get http "$c" "$conns" p999_us)
            echo "| $conns | $(label "$c") | $(calc '%.0f' a "$rps") | $(calc '%.2f' 'a / b' "$rps" "$n_rps") |" \
                "$(calc '%.2f' 'a / b' "$rps" "$d_rps") | $(ms "$p50") | $(ms "$p99") | $(ms "$p999") |" \
                "$(calc '%+.2f' '(a - b) / 1000' "$p99" "$d_p99") | $(calc '%.0f' a "$(get http "$c" "$conns" non2xx)") |" \
                "$(calc '%.0f' a "$(get http "$c" "$conns" errors)") |"
        done
    done
}

label() {
    case $1 in
        direct) echo "(a) direct to backend" ;;
        nginx) echo "(b) nginx, no auth" ;;
        gateway) echo "(c) gateway, valid token" ;;
        invalid_token) echo "(d) gateway, invalid token → 401" ;;
        forged) echo "(f) gateway, a new forgery each request → 401" ;;
        no_auth) echo "(e) gateway, auth_required: false" ;;
        floor) echo "(g) bench-floor: actix-web + the gateway's backend client, nothing else" ;;
        *) echo "$1" ;;
    esac
}

sse_table() {
    local streams c
    echo "| streams | target | events | p50 µs | p99 µs | p99.9 µs | mean µs | added p50 µs | added p99 µs |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    for streams in 1 50; do
        for c in direct nginx gateway; do
            echo "| $streams | $c | $(calc '%.0f' a "$(get sse "$c" "$streams" events)") |" \
                "$(calc '%.0f' a "$(get sse "$c" "$streams" p50_us)") | $(calc '%.0f' a "$(get sse "$c" "$streams" p99_us)") |" \
                "$(calc '%.0f' a "$(get sse "$c" "$streams" p999_us)") | $(calc '%.0f' a "$(get sse "$c" "$streams" mean_us)") |" \
                "$(calc '%+.0f' 'a - b' "$(get sse "$c" "$streams" p50_us)" "$(get sse direct "$streams" p50_us)") |" \
                "$(calc '%+.0f' 'a - b' "$(get sse "$c" "$streams" p99_us)" "$(get sse direct "$streams" p99_us)") |"
        done
    done
}

token_table() {
    local kind phase
    echo "| storage | operation | per second | p50 ms | p99 ms | failed |"
    echo "|---|---|---:|---:|---:|---:|"
    for kind in memory redis; do
        for phase in registrations redemptions rotations; do
            [[ -z $(get token "$kind" "$phase" per_sec) ]] && continue
            echo "| $kind | $phase | $(calc '%.0f' a "$(get token "$kind" "$phase" per_sec)") |" \
                "$(ms "$(get token "$kind" "$phase" p50_us)") | $(ms "$(get token "$kind" "$phase" p99_us)") |" \
                "$(calc '%.0f' a "$(get token "$kind" "$phase" failed)") |"
        done
    done
}

targets_table() {
    local c tp32 tp256 rej32 rej256 addp99 sse_add hold_rss idle start rot_mem rot_redis
    tp32=$(calc '%.2f' 'a / b' "$(get http gateway 32 rps)" "$(get http nginx 32 rps)")
    tp256=$(calc '%.2f' 'a / b' "$(get http gateway 256 rps)" "$(get http nginx 256 rps)")
    rej32=$(calc '%.2f' 'a / b' "$(get http invalid_token 32 rps)" "$(get http nginx 32 rps)")
    rej256=$(calc '%.2f' 'a / b' "$(get http invalid_token 256 rps)" "$(get http nginx 256 rps)")
    addp99=$(calc '%.2f' '(a - b) / 1000' "$(get http gateway 32 p99_us)" "$(get http direct 32 p99_us)")
    sse_add=$(calc '%.3f' '(a - b) / 1000' "$(get sse gateway 1 p50_us)" "$(get sse direct 1 p50_us)")
    hold_rss=$(mib "$(get hold gateway "$STREAMS" rss_open_kib)")
    idle=$(mib "$(get process gateway memory idle_rss_kib)")
    start=$(get startup gateway memory median_ms)
    rot_mem=$(calc '%.0f' a "$(get token memory rotations per_sec)")
    rot_redis=$(calc '%.0f' a "$(get token redis rotations per_sec)")
    echo "| target | measured | verdict |"
    echo "|---|---:|---|"
    echo "| gateway throughput ≥ 0.9 × nginx at 32 connections | $tp32 × | $(verdict "$tp32" '>=' 0.9) |"
    echo "| gateway throughput ≥ 0.9 × nginx at 256 connections | $tp256 × | $(verdict "$tp256" '>=' 0.9) |"
    echo "| rejection (bad signature → 401) ≥ 0.5 × nginx at 32 connections | $rej32 × | $(verdict "$rej32" '>=' 0.5) |"
    echo "| rejection (bad signature → 401) ≥ 0.5 × nginx at 256 connections | $rej256 × | $(verdict "$rej256" '>=' 0.5) |"
    echo "| (for the record, not a target) a new forgery each request, ÷ nginx at 32 / 256 connections | $(calc '%.2f' 'a / b' "$(get http forged 32 rps)" "$(get http nginx 32 rps)") × / $(calc '%.2f' 'a / b' "$(get http forged 256 rps)" "$(get http nginx 256 rps)") × | |"
    echo "| (for the record, not a target) the floor (g) ÷ nginx at 32 / 256 connections: the ceiling of this stack | $(calc '%.2f' 'a / b' "$(get http floor 32 rps)" "$(get http nginx 32 rps)") × / $(calc '%.2f' 'a / b' "$(get http floor 256 rps)" "$(get http nginx 256 rps)") × | |"
    echo "| (for the record, not a target) gateway (c) ÷ floor (g) at 32 / 256 connections: the gateway's own work | $(calc '%.2f' 'a / b' "$(get http gateway 32 rps)" "$(get http floor 32 rps)") × / $(calc '%.2f' 'a / b' "$(get http gateway 256 rps)" "$(get http floor 256 rps)") × | |"
    echo "| added p99 over direct ≤ 1 ms at 32 connections | $addp99 ms | $(verdict "$addp99" '<=' 1) |"
    echo "| added SSE event latency ≤ 1 ms (p50, 1 stream) | $sse_add ms | $(verdict "$sse_add" '<=' 1) |"
    # Judged on 10,000 streams: measured when all opened, else extrapolated per stream.
    local opened before at10k
    opened=$(get hold gateway "$STREAMS" opened)
    before=$(get hold gateway "$STREAMS" rss_before_kib)
    at10k=$(calc '%.1f' '(b + (a - b) / c * 10000) / 1024' "$(get hold gateway "$STREAMS" rss_open_kib)" "$before" "$opened")
    if [[ $opened == 10000 ]]; then
        echo "| 10,000 open SSE streams ≤ 128 MiB RSS | $hold_rss MiB | $(verdict "$hold_rss" '<=' 128) |"
    else
        echo "| 10,000 open SSE streams ≤ 128 MiB RSS | $hold_rss MiB with $(calc '%.0f' a "$opened") open; ≈ $at10k MiB at 10,000 (extrapolated) | $(verdict "$at10k" '<=' 128) |"
    fi
    echo "| (for the record, not a target) the same streams through the floor (g) | $(mib "$(get hold floor "$STREAMS" rss_open_kib)") MiB with $(calc '%.0f' a "$(get hold floor "$STREAMS" opened)") open | |"
    echo "| idle RSS ≤ 20 MiB | $idle MiB | $(verdict "$idle" '<=' 20) |"
    echo "| start to first request ≤ 200 ms (median) | $(calc '%.1f' a "$start") ms | $(verdict "$start" '<=' 200) |"
    echo "| ≥ 10,000 refresh rotations/s on memory | $rot_mem /s | $(verdict "$rot_mem" '>=' 10000) |"
    echo "| ≥ 4,000 refresh rotations/s on local Redis | $rot_redis /s | $(verdict "$rot_redis" '>=' 4000) |"
}

bottleneck_check() {
    local conns d best c v ok=yes
    for conns in $CONNS; do
        d=$(get http direct "$conns" rps)
        for c in nginx gateway invalid_token forged no_auth floor; do
            v=$(get http "$c" "$conns" rps)
            [[ -n $d && -n $v ]] && awk -v d="$d" -v v="$v" 'BEGIN { exit !(v > d) }' && ok="no ($c at $conns connections)"
        done
    done
    echo "$ok"
}

report() {
    MED=$WORK/medians.tsv
    medians >"$MED"
    local opened hold_kib before_kib per_stream
    opened=$(get hold gateway "$STREAMS" opened)
    hold_kib=$(get hold gateway "$STREAMS" rss_open_kib)
    before_kib=$(get hold gateway "$STREAMS" rss_before_kib)
    per_stream=$(calc '%.1f' '(a - b) / c' "$hold_kib" "$before_kib" "$opened")
    cat <<EOF
# mcp-gateway benchmark results

Generated by \`${BENCH_CMD:-bench/run.sh}\` on $(date -u '+%Y-%m-%d %H:%M UTC').
Not part of CI; these are measurements, not assertions.

## Machine

$(machine)

$(busy_note)

Every process (load generator, nginx or gateway, backend) shares these cores, so absolute
numbers are low next to a dedicated load-generator setup; the ratios, measured in the same run
with the targets alternating, are the figures to compare.

## Targets

$(targets_table)

## 1. Proxied \`tools/call\` (1 KiB JSON-RPC POST, plain JSON answer)

wrk ($(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)), ${DURATION} s per run, $ROUNDS rounds; each figure is the median over the
rounds, and the seven targets alternate within each round (the order rotates per round).
Ratios: × nginx = req/s ÷ nginx's req/s; × direct = req/s ÷ direct req/s. A 401 counts as
non-2xx in rows (d) and (f); that is the expected answer there. Row (d) sends one valid token
with its last signature characters changed, again and again (a client stuck on a corrupted
token: the gateway checks the signature once and then remembers the refusal); row (f) sends a
new forgery with every request (wrk's Lua builds each one, which costs the load generator
too), so each one costs the gateway a full ECDSA check. Row (g) is \`bench-floor\`
(bench/floor.rs): actix-web configured as the gateway is, forwarding with the gateway's own
backend client (hyper-util's pool), headers copied as the gateway copies them, and nothing
else: no token, forwarding or \`x-user-*\` headers, audit trail, metrics or routing. It is
the most any gateway built from these parts could do.

$(http_table)

Backend never the bottleneck (direct faster than every proxied run): $(bottleneck_check).
Gateway RSS while serving 256 connections: $(mib "$(get http gateway 256 rss_kib)") MiB.

## 2. Server-sent events

Added latency from the backend stamping an event (\`sent_ns\`, just before it is written) to
\`bench-sse\` reading it; 500 events 2 ms apart per stream, $SSE_ROUNDS rounds, median shown.

$(sse_table)

Open streams through the gateway (\`bench-sse hold\`, each stream authenticated and fed one
event, then kept open): $(calc '%.0f' a "$opened") of $STREAMS opened in $(get hold gateway "$STREAMS" open_secs) s,
$(calc '%.0f' a "$(get hold gateway "$STREAMS" failed)") failed. Gateway VmRSS: before $(mib "$before_kib") MiB, with the streams
open $(mib "$hold_kib") MiB (≈ $per_stream KiB per stream), after they closed $(mib "$(get hold gateway "$STREAMS" rss_after_close_kib)") MiB.
The same streams through \`bench-floor\` (row (g) above): before $(mib "$(get hold floor "$STREAMS" rss_before_kib)") MiB, with the streams open
$(mib "$(get hold floor "$STREAMS" rss_open_kib)") MiB (≈ $(calc '%.1f' '(a - b) / c' "$(get hold floor "$STREAMS" rss_open_kib)" "$(get hold floor "$STREAMS" rss_before_kib)" "$(get hold floor "$STREAMS" opened)") KiB per stream): what actix-web's connection and hyper's together hold.
${STREAMS_NOTE:-}

## 3. Token endpoint

\`bench-oauth bench\` (awc, one thread, 32 requests in flight): registrations; $CODES
authorization codes pre-generated through the browser flow (register → authorize → consent →
dev login → callback; untimed), then only their redemptions timed; then $CHAINS refresh chains
rotated $ROTATIONS times each, the chains concurrently. $ROUNDS rounds, median shown.
$([[ ${REDIS_DONE:-0} == 1 ]] || echo "Redis: not measured (the Redis backend is not on this commit or Redis was not reachable).")

$(token_table)

## 4. Process

- Idle RSS right after start: $(mib "$(get process gateway memory idle_rss_kib)") MiB; after the HTTP and SSE load and the open-streams test above: $(mib "$(get process gateway memory after_load_rss_kib)") MiB.
- Start to first accepted request (\`bench-sse startup\`: spawn, then connect + \`GET /health\` every
  100 µs; 7 runs, memory storage): median $(calc '%.1f' a "$(get startup gateway memory median_ms)") ms, min $(calc '%.1f' a "$(get startup gateway memory min_ms)") ms,
  max $(calc '%.1f' a "$(get startup gateway memory max_ms)") ms; status of the first answer: $(get startup gateway memory status); RSS then $(mib "$(get startup gateway memory rss_first_response_kib)") MiB.

## 5. Sequential \`tools/call\` against the official Python SDK backend (SSE and chunked-JSON answers)

\`bench/sdk_latency.sh\`: one keep-alive connection, \`tools/call whoami\` on
\`tests/e2e/py/backend.py\`, direct and through the gateway alternating; medians over $ROUNDS rounds.
Target (issue 14): added p50 and p99 ≤ 1 ms.

$(if [[ -s $WORK/sdk.md ]]; then cat "$WORK/sdk.md"; else echo "${SDK_NOTE:-Not measured.}"; fi)

## How it was run

\`\`\`
${BENCH_CMD:-bench/run.sh}
\`\`\`

Gateway: \`mcp-gateway --config gateway.yaml --port P\` (bench/gateway.yaml, memory storage,
\`RUST_LOG=warn\`: no access log, like nginx's \`access_log off\`), $(nproc) workers. nginx:
bench/nginx.conf, $(nproc) workers, keep-alive upstream pool, no buffering. Backend:
\`bench-backend\` (actix-web, $(nproc) workers). Raw measurements: one line per run and metric in
\`raw.tsv\` of the work directory.
EOF
}
