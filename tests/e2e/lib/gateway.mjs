// Runs the real gateway binary with a generated config file and stops it afterwards.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { sleep } from './net.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const e2eDir = path.resolve(here, '..');
export const repoRoot = path.resolve(e2eDir, '../..');

/** The binary under test: $GATEWAY_BIN (relative to tests/e2e) or target/debug/mcp-gateway. */
export function gatewayBin() {
  return path.resolve(e2eDir, process.env.GATEWAY_BIN || '../../target/debug/mcp-gateway');
}

/**
 * The gateway's config for one upstream provider kind (`oidc` discovers from the issuer,
 * `custom` gets the three endpoints spelled out) and one service `e2e` in front of `backendUrl`.
 * JSON is YAML, so the file is written as JSON with a .yaml name.
 */
export function gatewayConfig({ port, kind, idp, backendUrl, accessTokenTtl = 3 }) {
  const provider = { client_id: idp.clientId, client_secret: idp.clientSecret, scopes: ['openid', 'email', 'profile'] };
  if (kind === 'oidc') provider.issuer = idp.issuer;
  else {
    provider.authorization_url = idp.endpoints.authorization;
    provider.token_url = idp.endpoints.token;
    provider.userinfo_url = idp.endpoints.userinfo;
  }
  return {
    host: '127.0.0.1',
    port,
    issuer: `http://127.0.0.1:${port}`,
    session_secret: crypto.randomBytes(32).toString('hex'),
    debug: true,
    storage: { type: 'memory' },
    tokens: { access_token_ttl: accessTokenTtl },
    oauth_providers: { [kind]: provider },
    mcp_services: {
      e2e: { name: 'E2E backend', url: backendUrl, oauth_provider: kind, auth_required: true },
    },
  };
}

// The test's config file is the only config layer besides config/default.yaml: a developer's
// MCP_* variables must not leak into the run.
function gatewayEnv() {
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' };
  for (const k of Object.keys(env)) if (k.startsWith('MCP_')) delete env[k];
  return env;
}

/**
 * Starts the gateway on `port` with `config`, waits until GET /health answers 200, and returns
 * its URL, its output so far (for failure messages) and a stop function (SIGTERM, then SIGKILL).
 */
export async function startGateway({ port, config, timeoutMs = 20000 }) {
  const bin = gatewayBin();
  if (!fs.existsSync(bin)) throw new Error(`gateway binary not found at ${bin} (build it with cargo build, or set GATEWAY_BIN)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-gw-e2e-'));
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  const output = [];
  const child = spawn(bin, ['--config', file, '--port', String(port)], {
    cwd: repoRoot,
    env: gatewayEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (d) => output.push(d.toString()));
  child.stderr.on('data', (d) => output.push(d.toString()));
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (exited === null) {
      child.kill('SIGTERM');
      for (let i = 0; i < 30 && exited === null; i += 1) await sleep(100);
      if (exited === null) child.kill('SIGKILL');
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const logs = () => output.join('').split('\n').slice(-60).join('\n');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited !== null) {
      await stop();
      throw new Error(`gateway exited (${JSON.stringify(exited)}) before /health answered; output:\n${logs()}`);
    }
    try {
      const res = await fetch(`${url}/health`);
      await res.arrayBuffer();
      if (res.status === 200) return { url, logs, stop, child };
    } catch { /* not listening yet */ }
    await sleep(100);
  }
  await stop();
  throw new Error(`gateway did not answer GET /health with 200 within ${timeoutMs} ms; output:\n${logs()}`);
}
