// The official MCP Python SDK (`mcp` on PyPI, pinned in py/requirements.txt) on both sides of
// the gateway:
// - as a backend: py/backend.py (MCPServer, streamable HTTP, the SDK's default DNS-rebinding
//   protection for a loopback server), first on its own, then behind the gateway with the whole
//   TypeScript-client scenario (login, tools, identity headers, progress streaming, refresh,
//   revocation);
// - as a client: py/client_flow.py, whose OAuthClientProvider drives the login by itself
//   (401, discovery, registration, authorization URL, code exchange, later the refresh) while a
//   scripted browser plays the person; then tools/list and whoami, against the TypeScript
//   backend and against the Python one.
// The Python side runs from tests/e2e/.venv, created on first use (lib/python.mjs). Any failure
// here, the venv set-up included, is a failed test, never a skip.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { freePort } from '../lib/net.mjs';
import { startIdp, accountClaims } from '../lib/idp.mjs';
import { startBackend } from '../lib/backend.mjs';
import { startGateway, gatewayConfig } from '../lib/gateway.mjs';
import { ensureVenv, startPythonBackend, runPythonClient } from '../lib/python.mjs';
import { gatewayScenario } from '../lib/scenario.mjs';

describe('Python SDK backend on its own (harness)', () => {
  const s = {};
  after(async () => {
    await s.client?.close().catch(() => {});
    await s.backend?.close();
  });

  it('sets up the Python venv with the pinned SDK and starts py/backend.py', async () => {
    await ensureVenv();
    s.backend = await startPythonBackend();
    assert.match(s.backend.url, /^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
  });

  it('answers the TypeScript SDK client directly: tools, whoami from the request headers', async () => {
    assert.ok(s.backend, 'backend not running (earlier step failed)');
    s.client = new Client({ name: 'harness', version: '1.0.0' });
    await s.client.connect(new StreamableHTTPClientTransport(new URL(s.backend.url), { requestInit: { headers: { 'x-user-id': 'direct' } } }));
    const { tools } = await s.client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['progress', 'whoami']);
    const who = await s.client.callTool({ name: 'whoami', arguments: {} });
    assert.equal(who.structuredContent['x-user-id'], 'direct', JSON.stringify(who));
    assert.equal(who.structuredContent.authorization_present, false);
  });

  it('refuses a Host other than its loopback address with 421 (DNS-rebinding protection is on)', async () => {
    assert.ok(s.backend, 'backend not running (earlier step failed)');
    // fetch() will not let a script set Host, so speak HTTP/1.1 by hand.
    const { host, port } = new URL(s.backend.url);
    const net = await import('node:net');
    const status = await new Promise((resolve, reject) => {
      const sock = net.connect(Number(port), '127.0.0.1', () => {
        const body = '{"jsonrpc":"2.0","id":1,"method":"ping"}';
        sock.write(`POST /mcp HTTP/1.1\r\nHost: mcp.example.com\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      });
      let data = '';
      sock.on('data', (d) => { data += d; });
      sock.on('end', () => resolve(Number(data.split(' ')[1])));
      sock.on('error', reject);
    });
    assert.equal(status, 421, `Host mcp.example.com instead of ${host}`);
  });
});

gatewayScenario('oidc', { backend: startPythonBackend, backendName: 'Python SDK (MCPServer)' });

describe('Python SDK client (OAuthClientProvider) through the gateway', () => {
  const s = {};
  const login = `py-${crypto.randomBytes(4).toString('hex')}`;
  const claims = accountClaims(login);
  const context = (run) => `\n  client exit ${run.code}${run.signal ? ` (${run.signal})` : ''}\n  stderr (tail):\n${run.stderr.split('\n').slice(-40).join('\n')}`
    + `\n  SDK HTTP log:\n${(run.report?.http ?? []).map((e) => `    ${e.method} ${e.url} -> ${e.status ?? '?'}${e.form ? ` ${JSON.stringify(e.form)}` : ''}`).join('\n')}`
    + `\n  gateway output (tail):\n${s.gateway?.logs() ?? '(not started)'}`;

  after(async () => {
    await s.gateway?.stop();
    await s.tsBackend?.close();
    await s.pyBackend?.close();
    await s.idp?.close();
  });

  it('starts oidc-provider, both backends and the gateway with a service in front of each', async () => {
    await ensureVenv();
    s.port = await freePort();
    s.gatewayUrl = `http://127.0.0.1:${s.port}`;
    s.idp = await startIdp({ redirectUri: `${s.gatewayUrl}/oauth/callback` });
    s.tsBackend = await startBackend();
    s.pyBackend = await startPythonBackend();
    const config = gatewayConfig({ port: s.port, kind: 'oidc', idp: s.idp, backendUrl: s.tsBackend.url, accessTokenTtl: 3 });
    config.mcp_services.py = { name: 'Python backend', url: s.pyBackend.url, oauth_provider: 'oidc', auth_required: true };
    s.gateway = await startGateway({ port: s.port, config });
  });

  it('logs in with the SDK driving discovery, registration and the code exchange; whoami at the TypeScript backend', async () => {
    assert.ok(s.gateway, 'gateway not running (earlier step failed)');
    const serviceUrl = `${s.gatewayUrl}/e2e/mcp`;
    const run = await runPythonClient([serviceUrl, '--login', login]);
    s.run = run;
    const r = run.report;
    assert.ok(r, `client_flow.py printed no report${context(run)}`);
    assert.equal(r.ok, true, `client_flow.py failed: ${r.error}${context(run)}`);
    assert.equal(run.code, 0, context(run));

    // What the SDK did on the wire, in order: 401, PRM from the challenge, AS metadata, DCR,
    // (browser), token exchange, then MCP with the bearer token.
    const http = r.http;
    const first = http[0];
    assert.equal(first.status, 401, context(run));
    assert.equal(first.authorization, null, 'the first request went out without a token');
    assert.ok(first.www_authenticate.includes(`resource_metadata="${s.gatewayUrl}/.well-known/oauth-protected-resource/e2e/mcp"`), first.www_authenticate);
    const prm = http.find((e) => e.url.includes('/.well-known/oauth-protected-resource'));
    assert.equal(prm.url, `${s.gatewayUrl}/.well-known/oauth-protected-resource/e2e/mcp`);
    assert.equal(prm.status, 200);
    const asm = http.find((e) => e.url.includes('/.well-known/oauth-authorization-server') || e.url.includes('/.well-known/openid-configuration'));
    assert.equal(asm.url, `${s.gatewayUrl}/.well-known/oauth-authorization-server`);
    assert.equal(asm.status, 200);
    const register = http.find((e) => e.method === 'POST' && e.url.endsWith('/register'));
    assert.equal(register?.url, `${s.gatewayUrl}/oauth/register`, context(run));
    assert.equal(register.status, 201, JSON.stringify(register.response));
    assert.equal(register.response.client_id, r.client_info.client_id);
    const exchange = http.find((e) => e.form?.grant_type === 'authorization_code');
    assert.equal(exchange?.status, 200, `code exchange${context(run)}`);
    assert.equal(exchange.form.resource, serviceUrl, 'the SDK sent the resource indicator from the PRM');
    assert.equal(exchange.form.client_id, r.client_info.client_id);

    // The authorization URL the SDK built, and what the gateway sent back.
    const authUrl = new URL(r.authorization_urls[0]);
    assert.equal(`${authUrl.origin}${authUrl.pathname}`, `${s.gatewayUrl}/oauth/authorize`);
    assert.equal(authUrl.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(authUrl.searchParams.get('resource'), serviceUrl);
    const back = new URL(r.redirect_back);
    assert.equal(back.searchParams.get('iss'), s.gatewayUrl, 'iss in the authorization response (RFC 9207)');
    assert.equal(back.searchParams.get('state'), authUrl.searchParams.get('state'));
    const trail = r.browser_trail;
    const consent = trail.findIndex((h) => h.url.startsWith(s.gatewayUrl) && h.status === 200);
    const firstIdpHop = trail.findIndex((h) => h.url.startsWith(s.idp.issuer));
    assert.ok(consent >= 0 && firstIdpHop > consent, `no gateway consent page before the upstream login: ${JSON.stringify(trail)}`);

    // MCP through the proxy.
    assert.deepEqual(r.tools, ['progress', 'whoami']);
    assert.deepEqual(r.whoami, {
      'x-user-id': `oidc_${claims.sub}`,
      'x-user-email': claims.email,
      'x-user-name': claims.name,
      'x-user-provider': 'oidc',
      'x-user-avatar': claims.picture,
      authorization_present: false,
    });
    assert.equal(r.tokens.token_type, 'Bearer');
    assert.equal(r.tokens.has_refresh_token, true);
    // The SDK probes the 2026 protocol first (server/discover); the TypeScript backend refuses
    // it, so the SDK falls back to the initialize handshake, both through the proxy.
    assert.ok(http.some((e) => e.rpc === 'initialize' && e.status === 200), `no initialize handshake${context(run)}`);
    assert.ok(!/^2026-/.test(r.protocol_version), `protocol ${r.protocol_version}`);
    const mcpCalls = http.filter((e) => e.url === serviceUrl && e.status === 200);
    assert.ok(mcpCalls.length >= 3, `MCP requests after login: ${JSON.stringify(mcpCalls)}`);
    assert.ok(mcpCalls.every((e) => e.authorization === 'Bearer'));
  });

  it('never lets Authorization or the client-sent x-user-* headers reach the TypeScript backend', () => {
    assert.ok(s.run?.report?.ok, 'no successful client run (earlier step failed)');
    const reqs = s.tsBackend.requests;
    assert.ok(reqs.length > 0, 'nothing reached the backend');
    const leaked = reqs.filter((r) => r.headers.authorization !== undefined);
    assert.equal(leaked.length, 0, `Authorization reached the backend on ${leaked.map((r) => `${r.method} ${r.path}`).join(', ')}`);
    const spoofed = reqs.filter((r) => /spoofed/.test(`${r.headers['x-user-id']} ${r.headers['x-user-email']}`));
    assert.equal(spoofed.length, 0, 'client-sent x-user-* headers reached the backend');
  });

  it('does the same against the Python backend: progress streamed one by one, then the SDK refreshes on expiry', async () => {
    assert.ok(s.gateway, 'gateway not running (earlier step failed)');
    const serviceUrl = `${s.gatewayUrl}/py/mcp`;
    const run = await runPythonClient([serviceUrl, '--login', login, '--progress', '--refresh']);
    const r = run.report;
    assert.ok(r, `client_flow.py printed no report${context(run)}`);
    assert.equal(r.ok, true, `client_flow.py failed: ${r.error}${context(run)}`);
    // SDK to SDK, the 2026 protocol is negotiated by server/discover with no initialize and no
    // session: each request stands alone, and the gateway proxies it like any other.
    assert.ok(r.http.some((e) => e.rpc === 'server/discover' && e.status === 200), `server/discover not answered${context(run)}`);
    assert.match(r.protocol_version, /^2026-/);
    assert.equal(r.whoami['x-user-id'], `oidc_${claims.sub}`);
    assert.equal(r.whoami['x-user-email'], claims.email);
    assert.equal(r.whoami.authorization_present, false);
    const { arrivals, result } = r.progress;
    assert.deepEqual(arrivals.map((a) => a.progress), [1, 2, 3, 4, 5]);
    assert.ok(arrivals[0].at < result.sentAt[4] - 400, `first notification ${result.sentAt[4] - arrivals[0].at} ms before the last was sent (want > 400): buffered`);
    // Past expires_in (3 s) the SDK refreshed by itself: refresh_token grant with its client_id
    // and the resource, a rotated pair, and the next call went through.
    const refresh = r.http.find((e) => e.form?.grant_type === 'refresh_token');
    assert.equal(refresh?.status, 200, `refresh_token grant${context(run)}`);
    assert.equal(refresh.form.resource, serviceUrl);
    assert.equal(refresh.form.client_id, r.client_info.client_id);
    const { token_before: before, token_after: afterRefresh, whoami: again } = r.after_refresh;
    assert.notEqual(afterRefresh.access, before.access, 'access token unchanged after refresh');
    assert.notEqual(afterRefresh.refresh, before.refresh, 'refresh token did not rotate');
    assert.equal(again['x-user-id'], `oidc_${claims.sub}`);
    const reqs = s.pyBackend.requests;
    const backendHost = new URL(s.pyBackend.url).host;
    assert.deepEqual([...new Set(reqs.map((q) => q.headers.host))], [backendHost]);
    assert.equal(reqs.filter((q) => q.headers.authorization !== undefined).length, 0, 'Authorization reached the Python backend');
    assert.equal(reqs.filter((q) => /spoofed/.test(`${q.headers['x-user-id']}`)).length, 0, 'spoofed x-user-id reached the Python backend');
  });
});
