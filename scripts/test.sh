#!/usr/bin/env bash
# Runs every test: Rust unit, black-box and storage-backend tests, then the end-to-end tests
# with the official MCP TypeScript SDK and a real OpenID provider. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real Redis on 127.0.0.1:6379 and the OpenBao binary for the Vault tests.
bash scripts/test-services.sh

cargo test --all-targets --locked

# End-to-end: the gateway binary built above, driven by real clients.
target_dir="${CARGO_TARGET_DIR:-target}"
export GATEWAY_BIN="$(cd "$target_dir" && pwd)/debug/mcp-gateway"
if [ -f tests/e2e/package.json ]; then
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error && npm test)
fi
