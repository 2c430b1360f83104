// The end-to-end scenario, run once per upstream provider kind: a real MCP client (the
// official TypeScript SDK) logs in through the gateway, whose upstream is a real OpenID
// Provider (oidc-provider), and uses a real MCP server (the SDK's) behind it.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { CallToolResultSchema, LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import { freePort, sleep } from './net.mjs';
import { startIdp, accountClaims } from './idp.mjs';
import { startBackend } from './backend.mjs';
import { startGateway, gatewayConfig } from './gateway.mjs';
import { InMemoryOAuthProvider, connectWithOAuth } from './mcp-client.mjs';

/** Spoofed identity headers the client sends; the gateway must replace them with its own. */
const SPOOFED = { 'x-user-id': 'spoofed-admin', 'x-user-email': 'spoofed@evil.test' };

function describeHttp(log) {
  return log.map((e) => `    ${e.method} ${e.url} -> ${e.status ?? '?'}${e.form?.grant_type ? ` (grant_type=${e.form.grant_type})` : ''}${e.wwwAuthenticate ? ` WWW-Authenticate: ${e.wwwAuthenticate}` : ''}`).join('\n');
}

/**
 * Registers the suite for provider kind `kind` (`oidc` or `custom`). `start` launches the
 * gateway (the real binary; replaceable only to check the harness itself).
 */
export function gatewayScenario(kind, { start = startGateway } = {}) {
  describe(`gateway with upstream provider "${kind}", TypeScript SDK client`, () => {
    const s = {};
    const login = `user-${crypto.randomBytes(4).toString('hex')}`;
    const claims = accountClaims(login);
    const httpLog = [];
    const context = () => `\n  SDK HTTP log:\n${describeHttp(httpLog)}\n  gateway output (tail):\n${s.gateway?.logs() ?? '(not started)'}`;

    after(async () => {
      await s.client?.close().catch(() => {});
      await s.gateway?.stop();
      await s.backend?.close();
      await s.idp?.close();
    });

    // Setup is a test of its own (not a before hook) so that a gateway that cannot start shows
    // up as a failed test, and each later step fails on its own instead of being cancelled.
    it('starts oidc-provider, the MCP backend and the gateway (GET /health 200)', async () => {
      s.port = await freePort();
      s.gatewayUrl = `http://127.0.0.1:${s.port}`;
      s.serviceUrl = `${s.gatewayUrl}/e2e/mcp`;
      s.idp = await startIdp({ redirectUri: `${s.gatewayUrl}/oauth/callback` });
      s.backend = await startBackend();
      s.provider = new InMemoryOAuthProvider({ redirectUrl: `http://127.0.0.1:${await freePort()}/callback`, login });
      s.gateway = await start({ port: s.port, config: gatewayConfig({ port: s.port, kind, idp: s.idp, backendUrl: s.backend.url }) });
    });

    it('answers an unauthenticated MCP request with 401 and its protected-resource metadata URL', async () => {
      assert.ok(s.gateway, 'gateway not running (earlier step failed)');
      const res = await fetch(s.serviceUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
      });
      await res.arrayBuffer();
      assert.equal(res.status, 401);
      const challenge = res.headers.get('www-authenticate') ?? '';
      assert.match(challenge, /^Bearer /);
      assert.ok(challenge.includes(`resource_metadata="${s.gatewayUrl}/.well-known/oauth-protected-resource/e2e/mcp"`), challenge);
      assert.equal(s.backend.requests.length, 0, 'an unauthenticated request reached the backend');
    });

    it('lets the SDK log in: discovery, registration, consent page, upstream login, code exchange', async () => {
      assert.ok(s.gateway, 'gateway not running (earlier step failed)');
      let conn;
      try {
        conn = await connectWithOAuth(s.serviceUrl, s.provider, { httpLog, headers: SPOOFED });
      } catch (err) {
        assert.fail(`${err.stack || err}${context()}`);
      }
      s.client = conn.client;
      s.transport = conn.transport;
      assert.equal(conn.loggedIn, true, 'the gateway let the client in without a login');
      const trail = s.provider.lastTrail;
      const firstIdpHop = trail.findIndex((h) => h.url.startsWith(s.idp.issuer));
      const consent = trail.findIndex((h) => h.url.startsWith(s.gatewayUrl) && h.status === 200);
      assert.ok(consent >= 0 && firstIdpHop > consent, `no gateway consent page before the upstream login; trail: ${JSON.stringify(trail.map((h) => [h.method, h.url, h.status]))}`);
      const back = s.provider.lastRedirect;
      assert.equal(back.searchParams.get('iss'), s.gatewayUrl, 'iss in the authorization response (RFC 9207)');
      assert.equal(back.searchParams.get('state'), s.provider.authorizationUrls[0].searchParams.get('state'));
      const upstreamAuth = s.idp.requests.find((r) => r.path.startsWith('/auth?'));
      assert.ok(upstreamAuth, 'the gateway never sent the browser to the IdP authorization endpoint');
      const q = new URL(upstreamAuth.path, s.idp.issuer).searchParams;
      assert.equal(q.get('code_challenge_method'), 'S256');
      assert.deepEqual((q.get('scope') ?? '').split(' ').sort(), ['email', 'openid', 'profile']);
      const register = httpLog.find((e) => e.method === 'POST' && e.url.endsWith('/register'));
      assert.equal(register?.url, `${s.gatewayUrl}/oauth/register`, `registration endpoint${context()}`);
      assert.equal(register.status, 201, `dynamic registration status${context()}`);
      const exchange = httpLog.find((e) => e.form?.grant_type === 'authorization_code');
      assert.equal(exchange?.status, 200, `code exchange${context()}`);
      assert.equal(exchange.form.resource, s.serviceUrl, 'the SDK sent the resource indicator from the PRM');
    });

    it('lists the backend tools through the proxy', async () => {
      assert.ok(s.client, 'not logged in (earlier step failed)');
      const { tools } = await s.client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), ['progress', 'whoami']);
    });

    it('passes the IdP user as x-user-* headers and never the Authorization header', async () => {
      assert.ok(s.client, 'not logged in (earlier step failed)');
      const res = await s.client.callTool({ name: 'whoami', arguments: {} });
      const who = res.structuredContent;
      assert.deepEqual(who, {
        'x-user-id': `${kind}_${claims.sub}`,
        'x-user-email': claims.email,
        'x-user-name': claims.name,
        'x-user-provider': kind,
        'x-user-avatar': claims.picture,
        authorization_present: false,
      });
      const leaked = s.backend.requests.filter((r) => r.headers.authorization !== undefined);
      assert.equal(leaked.length, 0, `Authorization reached the backend on ${leaked.map((r) => `${r.method} ${r.path}`).join(', ')}`);
      const spoofed = s.backend.requests.filter((r) => String(r.headers['x-user-id']).includes('spoofed') || String(r.headers['x-user-email']).includes('spoofed'));
      assert.equal(spoofed.length, 0, 'client-sent x-user-* headers reached the backend');
    });

    it('streams progress notifications one by one', async () => {
      assert.ok(s.client, 'not logged in (earlier step failed)');
      const arrivals = [];
      const res = await s.client.callTool({ name: 'progress', arguments: { steps: 5, delay_ms: 200 } }, CallToolResultSchema, {
        onprogress: (p) => arrivals.push({ at: Date.now(), progress: p.progress }),
      });
      const doneAt = Date.now();
      const { sentAt } = res.structuredContent;
      assert.deepEqual(arrivals.map((a) => a.progress), [1, 2, 3, 4, 5]);
      // Buffered by the proxy, all five would land together after the last was sent.
      assert.ok(arrivals[0].at < sentAt[4] - 400, `first notification arrived ${sentAt[4] - arrivals[0].at} ms before the last was sent (want > 400): buffered`);
      assert.ok(arrivals[4].at - arrivals[0].at >= 500, `notifications arrived within ${arrivals[4].at - arrivals[0].at} ms of each other: buffered`);
      assert.ok(doneAt - arrivals[0].at >= 600);
    });

    it('refreshes an expired access token through the SDK and the next call succeeds', async () => {
      assert.ok(s.client, 'not logged in (earlier step failed)');
      const old = s.provider.tokens();
      assert.ok(old?.refresh_token, 'the token response carried no refresh_token');
      // Wait until the gateway itself refuses the old token (its TTL is 3 s plus any leeway).
      const started = Date.now();
      let status;
      while (Date.now() - started < 20000) {
        const res = await fetch(s.serviceUrl, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${old.access_token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream',
            'mcp-session-id': s.transport.sessionId ?? '', 'mcp-protocol-version': s.transport.protocolVersion ?? LATEST_PROTOCOL_VERSION,
          },
          body: JSON.stringify({ jsonrpc: '2.0', id: `poll-${Date.now()}`, method: 'ping' }),
        });
        await res.arrayBuffer();
        status = res.status;
        if (status === 401) {
          assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
          break;
        }
        await sleep(500);
      }
      assert.equal(status, 401, `an access token with access_token_ttl 3 was still accepted after ${Date.now() - started} ms`);
      const before = httpLog.length;
      const res = await s.client.callTool({ name: 'whoami', arguments: {} });
      assert.equal(res.structuredContent['x-user-id'], `${kind}_${claims.sub}`);
      const fresh = s.provider.tokens();
      assert.notEqual(fresh.access_token, old.access_token, 'access token unchanged');
      assert.notEqual(fresh.refresh_token, old.refresh_token, 'refresh token did not rotate');
      const refresh = httpLog.slice(before).find((e) => e.form?.grant_type === 'refresh_token');
      assert.equal(refresh?.status, 200, `no successful refresh_token grant after expiry${context()}`);
      assert.equal(refresh.form.refresh_token, old.refresh_token);
    });

    it('revokes the refresh token; using it afterwards fails with invalid_grant', async () => {
      assert.ok(s.client, 'not logged in (earlier step failed)');
      const meta = await (await fetch(`${s.gatewayUrl}/.well-known/oauth-authorization-server`)).json();
      assert.equal(meta.revocation_endpoint, `${s.gatewayUrl}/oauth/revoke`);
      const { refresh_token: rt } = s.provider.tokens();
      const clientInfo = s.provider.clientInformation();
      const clientAuth = { client_id: clientInfo.client_id };
      if (clientInfo.client_secret) clientAuth.client_secret = clientInfo.client_secret;
      const form = { 'content-type': 'application/x-www-form-urlencoded' };
      const revoke = await fetch(meta.revocation_endpoint, {
        method: 'POST', headers: form, body: new URLSearchParams({ token: rt, token_type_hint: 'refresh_token', ...clientAuth }),
      });
      assert.equal(revoke.status, 200, `revoke: ${await revoke.text()}`);
      const res = await fetch(meta.token_endpoint, {
        method: 'POST', headers: form,
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: rt, resource: s.serviceUrl, ...clientAuth }),
      });
      const body = await res.json().catch(() => ({}));
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(body.error, 'invalid_grant');
    });
  });
}
