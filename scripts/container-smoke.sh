#!/usr/bin/env bash
# Builds the container image and checks a running container as a user would meet it: the
# image's own HEALTHCHECK command, /health, /ready, the OAuth metadata, a 401 with its
# discovery header on a service, the icon, and a clean drain on `stop`. Not part of CI (a
# release build inside the image takes minutes). Prints the image size.
#
#   scripts/container-smoke.sh            # docker, or podman when there is no docker
#
# Needs a Redis on 127.0.0.1:6379 (scripts/test-services.sh starts one): the container runs
# config/compose.yaml, with host networking so that Redis is reachable at 127.0.0.1.
# Knobs: ENGINE (docker | podman), ENGINE_FLAGS (global flags, e.g. podman's
# "--runtime runc --cgroup-manager=cgroupfs"), BUILD_FLAGS / RUN_FLAGS (extra flags for build
# and run, e.g. "--ulimit nofile=1024:1024 --pull=never"), PORT (default 18080), METRICS_PORT (19464), IMAGE, REUSE_IMAGE=1 (run the image already built).
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${ENGINE:-$(command -v docker >/dev/null && echo docker || echo podman)}
read -r -a GLOBAL <<<"${ENGINE_FLAGS:-}"
read -r -a BUILD_EXTRA <<<"${BUILD_FLAGS:-}"
read -r -a RUN_EXTRA <<<"${RUN_FLAGS:-}"
E=("$ENGINE" "${GLOBAL[@]}")
IMAGE=${IMAGE:-mcp-gateway:smoke}
PORT=${PORT:-18080}
METRICS_PORT=${METRICS_PORT:-19464}
NAME=mcp-gateway-smoke-$$
GW=http://127.0.0.1:$PORT

step() { printf '== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; "${E[@]}" logs "$NAME" 2>&1 | tail -20 >&2 || true; exit 1; }
cleanup() { "${E[@]}" rm -f "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT

redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || fail "no Redis on 127.0.0.1:6379 (run scripts/test-services.sh)"

if [[ ${REUSE_IMAGE:-0} == 1 ]]; then
    step "reuse $IMAGE (REUSE_IMAGE=1)"
else
step "build $IMAGE with $ENGINE"
format=()
[[ $ENGINE == podman ]] && format=(--format docker) # OCI images drop HEALTHCHECK
started=$(date +%s)
"${E[@]}" build "${format[@]}" --network host "${BUILD_EXTRA[@]}" -t "$IMAGE" . >/tmp/container-smoke-build.log 2>&1 \
    || { tail -30 /tmp/container-smoke-build.log >&2; fail "build (log: /tmp/container-smoke-build.log)"; }
size=$("${E[@]}" image inspect --format '{{.Size}}' "$IMAGE")
printf 'built in %ss; image size %s bytes (%s MiB)\n' "$(($(date +%s) - started))" "$size" "$((size / 1048576))"
"${E[@]}" image inspect --format 'healthcheck: {{json .Config.Healthcheck}}' "$IMAGE" 2>/dev/null \
    || "${E[@]}" image inspect --format 'healthcheck: {{json .Healthcheck}}' "$IMAGE"
fi
printf 'image size %s MiB\n' "$(($("${E[@]}" image inspect --format '{{.Size}}' "$IMAGE") / 1048576))"

step "run it: config/compose.yaml, Redis on the host, port $PORT"
"${E[@]}" run -d --name "$NAME" --network host "${RUN_EXTRA[@]}" \
    -v "$PWD/config/compose.yaml:/app/config.yaml:ro" \
    -e MCP_GATEWAY_PORT="$PORT" -e REDIS_HOST=127.0.0.1 -e GATEWAY_ISSUER="$GW" \
    -e METRICS_LISTEN="127.0.0.1:$METRICS_PORT" \
    -e EVERYTHING_URL=http://127.0.0.1:9/mcp \
    -e GOOGLE_CLIENT_ID=smoke-client -e GOOGLE_CLIENT_SECRET=smoke-secret \
    -e SESSION_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n')" \
    "$IMAGE" >/dev/null
for _ in $(seq 1 100); do
    curl -fsS "$GW/health" >/dev/null 2>&1 && break
    sleep 0.1
done

expect() { # what status url [curl args...]
    local what=$1 want=$2 url=$3 got
    shift 3
    got=$(curl -s -o /tmp/container-smoke-body -w '%{http_code}' "$@" "$url") || true
    [[ $got == "$want" ]] || fail "$what: $url answered $got, not $want: $(head -c 300 /tmp/container-smoke-body)"
    printf '%-28s %s %s\n' "$what" "$got" "$(head -c 160 /tmp/container-smoke-body | tr -cd '[:print:]')"
}
expect "liveness" 200 "$GW/health"
expect "readiness" 200 "$GW/ready"
grep -q '"status":"ready"' /tmp/container-smoke-body || fail "/ready is not ready"
expect "AS metadata" 200 "$GW/.well-known/oauth-authorization-server"
grep -q "\"issuer\":\"$GW\"" /tmp/container-smoke-body || fail "issuer is not $GW"
expect "resource metadata" 200 "$GW/.well-known/oauth-protected-resource/everything/mcp"
grep -q "\"resource\":\"$GW/everything/mcp\"" /tmp/container-smoke-body || fail "resource is not $GW/everything/mcp"
expect "MCP call without a token" 401 "$GW/everything/mcp" -X POST -H 'Content-Type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
challenge=$(curl -s -o /dev/null -D - -X POST "$GW/everything/mcp" -d '{}' | tr -d '\r' | grep -i '^www-authenticate:')
[[ $challenge == *"resource_metadata=\"$GW/.well-known/oauth-protected-resource/everything/mcp\""* ]] \
    || fail "401 without the discovery header: $challenge"
printf '%-28s %s\n' "401 challenge" "${challenge#*: }"
expect "icon" 200 "$GW/favicon.ico"
expect "metrics (own port)" 200 "http://127.0.0.1:$METRICS_PORT/metrics"
grep -q '^mcp_gateway_build_info' /tmp/container-smoke-body || fail "no mcp_gateway_build_info in the scrape"
grep -E '^mcp_gateway_(proxy_requests_total|storage_operations_total)\{' /tmp/container-smoke-body | head -5
expect "no metrics on the public port" 404 "$GW/metrics"

step "the image's health check"
"${E[@]}" exec "$NAME" mcp-gateway healthcheck || fail "mcp-gateway healthcheck inside the container"
if [[ $ENGINE == podman ]]; then
    "${E[@]}" healthcheck run "$NAME" && echo "podman healthcheck run: healthy" || fail "podman healthcheck run"
fi

step "stop: SIGTERM drains and exits 0"
"${E[@]}" stop -t 40 "$NAME" >/dev/null
code=$("${E[@]}" inspect --format '{{.State.ExitCode}}' "$NAME")
# Read whole first: `grep -q` would stop reading early, and pipefail would count podman's
# broken pipe as a failure.
"${E[@]}" logs "$NAME" >/tmp/container-smoke-run.log 2>&1
grep -aq draining /tmp/container-smoke-run.log || fail "no 'draining' in the log"
[[ $code == 0 ]] || fail "exit code $code after stop"
echo "exit code 0; the log says: $(grep -ao 'SIGTERM: draining[^)]*)' /tmp/container-smoke-run.log | head -1)"
echo "container smoke: all checks passed"
