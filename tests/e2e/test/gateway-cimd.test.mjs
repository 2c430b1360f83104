// Client ID Metadata Documents with the official TypeScript SDK. The gateway runs with
// `runtime.allow_private_cimd: true` so it may fetch documents from loopback over http.
//
// The SDK uses a URL client id only when the authorization server advertises
// `client_id_metadata_document_supported: true` and the URL is https. This test cannot give
// the gateway a trusted TLS certificate on loopback, so it checks two halves:
// 1. the SDK's own choice: with an https `clientMetadataUrl` it skips registration and sends
//    that URL as client_id (the gateway then cannot fetch it: no TLS there, an error page);
// 2. the whole flow with the SDK driving it and a loopback http document URL handed to the SDK
//    as its client information: authorize (document fetched, consent page naming the document's
//    client and its host), upstream login, code exchange and MCP calls as that client id.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import { auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { freePort, listenLoopback, closeServer } from '../lib/net.mjs';
import { startIdp, accountClaims } from '../lib/idp.mjs';
import { startBackend } from '../lib/backend.mjs';
import { startGateway, gatewayConfig } from '../lib/gateway.mjs';
import { InMemoryOAuthProvider, connectWithOAuth, recordingFetch } from '../lib/mcp-client.mjs';

/** Serves metadata documents on 127.0.0.1, counting requests per path. */
async function startDocServer() {
  const docs = new Map();
  const hits = new Map();
  const server = http.createServer((req, res) => {
    hits.set(req.url, (hits.get(req.url) ?? 0) + 1);
    const doc = docs.get(req.url);
    if (!doc) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' });
    res.end(JSON.stringify(doc));
  });
  const port = await listenLoopback(server);
  const base = `http://127.0.0.1:${port}`;
  return {
    base,
    host: `127.0.0.1:${port}`,
    put(path, doc) { docs.set(path, doc); return `${base}${path}`; },
    hits: (path) => hits.get(path) ?? 0,
    close: () => closeServer(server),
  };
}

describe('gateway with Client ID Metadata Documents, TypeScript SDK client', () => {
  const s = {};
  const login = `cimd-${crypto.randomBytes(4).toString('hex')}`;
  const claims = accountClaims(login);
  const httpLog = [];

  after(async () => {
    await s.client?.close().catch(() => {});
    await s.gateway?.stop();
    await s.backend?.close();
    await s.idp?.close();
    await s.docs?.close();
  });

  it('starts oidc-provider, the backend, a document server and the gateway', async () => {
    s.port = await freePort();
    s.gatewayUrl = `http://127.0.0.1:${s.port}`;
    s.serviceUrl = `${s.gatewayUrl}/e2e/mcp`;
    s.idp = await startIdp({ redirectUri: `${s.gatewayUrl}/oauth/callback` });
    s.backend = await startBackend();
    s.docs = await startDocServer();
    const config = gatewayConfig({ port: s.port, kind: 'oidc', idp: s.idp, backendUrl: s.backend.url, accessTokenTtl: 60 });
    config.runtime = { allow_private_cimd: true };
    s.gateway = await startGateway({ port: s.port, config });
    const meta = await (await fetch(`${s.gatewayUrl}/.well-known/oauth-authorization-server`)).json();
    assert.equal(meta.client_id_metadata_document_supported, true);
  });

  it('the SDK sends its https clientMetadataUrl as client_id instead of registering', async () => {
    assert.ok(s.gateway, 'gateway not running (earlier step failed)');
    const provider = new InMemoryOAuthProvider({ redirectUrl: `http://127.0.0.1:${await freePort()}/callback`, login });
    const metadataUrl = `https://127.0.0.1:${await freePort()}/oauth/client.json`;
    Object.defineProperty(provider, 'clientMetadataUrl', { value: metadataUrl });
    const sent = [];
    provider.redirectToAuthorization = async (url) => { sent.push(new URL(url)); };
    const log = [];

    const result = await auth(provider, { serverUrl: s.serviceUrl, fetchFn: recordingFetch(log) });

    assert.equal(result, 'REDIRECT');
    assert.equal(log.filter((e) => e.url.endsWith('/register')).length, 0, 'the SDK registered although CIMD is advertised');
    assert.equal(sent[0]?.searchParams.get('client_id'), metadataUrl);
    // Nothing serves TLS there: the gateway answers with an error page, never a redirect.
    const page = await fetch(sent[0], { redirect: 'manual' });
    const html = await page.text();
    assert.equal(page.status, 400, html);
    assert.equal(page.headers.get('location'), null);
    assert.match(html, /metadata document could not be fetched/);
  });

  it('logs the SDK in with a document client id: consent names the client and its host', async () => {
    assert.ok(s.gateway, 'gateway not running (earlier step failed)');
    const redirectUrl = `http://127.0.0.1:${await freePort()}/callback`;
    const clientId = s.docs.put('/oauth/client.json', {
      client_id: `${s.docs.base}/oauth/client.json`,
      client_name: 'E2E Document Client',
      redirect_uris: ['http://127.0.0.1/callback'],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
    });
    s.provider = new InMemoryOAuthProvider({ redirectUrl, login });
    s.provider.saveClientInformation({ client_id: clientId });

    let conn;
    try {
      conn = await connectWithOAuth(s.serviceUrl, s.provider, { httpLog });
    } catch (err) {
      assert.fail(`${err.stack || err}\n  gateway output (tail):\n${s.gateway.logs()}`);
    }
    s.client = conn.client;

    assert.equal(conn.loggedIn, true);
    assert.equal(httpLog.filter((e) => e.url.endsWith('/register')).length, 0, 'no registration for a document client');
    assert.equal(s.provider.authorizationUrls[0].searchParams.get('client_id'), clientId);
    const consent = s.provider.lastTrail.find((h) => h.url.startsWith(s.gatewayUrl) && h.status === 200);
    assert.ok(consent?.body?.includes(`E2E Document Client (${s.docs.host})`), `consent page: ${consent?.body}`);
    const exchange = httpLog.find((e) => e.form?.grant_type === 'authorization_code');
    assert.equal(exchange?.status, 200);
    assert.equal(exchange.form.client_id, clientId);
    assert.equal(s.docs.hits('/oauth/client.json'), 1, 'the document was fetched once and then cached (max-age=300)');
  });

  it('calls tools through the proxy as the document client', async () => {
    assert.ok(s.client, 'not logged in (earlier step failed)');
    const res = await s.client.callTool({ name: 'whoami', arguments: {} });
    assert.equal(res.structuredContent['x-user-id'], `oidc_${claims.sub}`);
    const token = s.provider.tokens().access_token;
    const payload = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
    assert.equal(payload.client_id, s.provider.clientInformation().client_id);
  });
});
