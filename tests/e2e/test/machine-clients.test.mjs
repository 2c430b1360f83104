// Machine clients with the official TypeScript SDK's auth extensions
// (`@modelcontextprotocol/sdk/client/auth-extensions`): `ClientCredentialsProvider` with a
// client secret and `PrivateKeyJwtProvider` with ES256 and RS256 keys (RFC 7523, no `kid` in
// its assertions), each against a client configured under `clients:`. No browser and no
// person: the SDK sees the 401, discovers the gateway, runs the client credentials grant by
// itself, then lists tools and calls `whoami`, which must show the client as the identity.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider, PrivateKeyJwtProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { freePort } from '../lib/net.mjs';
import { startBackend } from '../lib/backend.mjs';
import { startGateway } from '../lib/gateway.mjs';

const SECRET = crypto.randomBytes(24).toString('hex');

/** A key pair: the private key as PKCS#8 PEM (what the SDK takes), the public one as a JWK. */
function keyPair(type) {
  const options = type === 'ec' ? { namedCurve: 'P-256' } : { modulusLength: 2048 };
  const { publicKey, privateKey } = crypto.generateKeyPairSync(type, options);
  return {
    pem: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    jwk: { ...publicKey.export({ format: 'jwk' }), kid: `${type}-1`, use: 'sig' },
  };
}

/** Connects with `authProvider`, lists tools, calls whoami; returns the identity it saw. */
async function whoamiAs(serviceUrl, authProvider) {
  const client = new Client({ name: 'e2e-machine', version: '1.0.0' });
  const url = new URL(serviceUrl);
  try {
    await client.connect(new StreamableHTTPClientTransport(url, { authProvider }));
  } catch (e) {
    // The first connect meets the 401, gets a token and may throw UnauthorizedError once the
    // token is saved (SDK versions differ); the second one connects with it.
    if (!authProvider.tokens()) throw e;
    await client.connect(new StreamableHTTPClientTransport(url, { authProvider }));
  }
  try {
    const { tools } = await client.listTools();
    assert.ok(tools.some((t) => t.name === 'whoami'), JSON.stringify(tools));
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    return result.structuredContent;
  } finally {
    await client.close().catch(() => {});
  }
}

describe('machine clients with the TypeScript SDK auth extensions', () => {
  const s = {};
  const ec = keyPair('ec');
  const rsa = keyPair('rsa');

  after(async () => {
    await s.gateway?.stop();
    await s.backend?.close();
  });

  it('starts the backend and a gateway with three configured clients', async () => {
    s.port = await freePort();
    s.backend = await startBackend();
    const client = (extra) => ({ grant_types: ['client_credentials'], services: ['e2e'], ...extra });
    const config = {
      host: '127.0.0.1',
      issuer: `http://127.0.0.1:${s.port}`,
      session_secret: crypto.randomBytes(32).toString('hex'),
      debug: true,
      storage: { type: 'memory' },
      oauth_providers: { dev: {} },
      mcp_services: { e2e: { name: 'E2E backend', url: s.backend.url, auth_required: true } },
      clients: {
        'ci-secret': client({ name: 'CI secret bot', token_endpoint_auth_method: 'client_secret_basic', client_secret: SECRET }),
        'ci-ec': client({ name: 'CI EC bot', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [ec.jwk] } }),
        'ci-rsa': client({ name: 'CI RSA bot', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [rsa.jwk] } }),
      },
    };
    s.gateway = await startGateway({ port: s.port, config });
    s.serviceUrl = `${s.gateway.url}/e2e/mcp`;
    const meta = await (await fetch(`${s.gateway.url}/.well-known/oauth-authorization-server`)).json();
    assert.ok(meta.grant_types_supported.includes('client_credentials'), JSON.stringify(meta));
    assert.ok(meta.token_endpoint_auth_methods_supported.includes('private_key_jwt'));
  });

  it('ClientCredentialsProvider (client secret) connects, lists tools and calls one as the client', async () => {
    assert.ok(s.gateway, 'gateway not running (earlier step failed)');
    const provider = new ClientCredentialsProvider({ clientId: 'ci-secret', clientSecret: SECRET, expectedIssuer: s.gateway.url });
    const who = await whoamiAs(s.serviceUrl, provider);
    assert.equal(who['x-user-id'], 'client:ci-secret');
    assert.equal(who['x-user-provider'], 'client');
    assert.equal(who['x-user-name'], 'CI secret bot');
    assert.equal(who['x-user-email'], null);
    assert.equal(who.authorization_present, false);
    assert.equal(provider.tokens().refresh_token, undefined, 'no refresh token');
  });

  for (const [id, alg, key] of [['ci-ec', 'ES256', ec], ['ci-rsa', 'RS256', rsa]]) {
    it(`PrivateKeyJwtProvider (${alg}) connects, lists tools and calls one as the client`, async () => {
      assert.ok(s.gateway, 'gateway not running (earlier step failed)');
      const provider = new PrivateKeyJwtProvider({ clientId: id, privateKey: key.pem, algorithm: alg, expectedIssuer: s.gateway.url });
      const who = await whoamiAs(s.serviceUrl, provider);
      assert.equal(who['x-user-id'], `client:${id}`);
      assert.equal(who['x-user-provider'], 'client');
    });
  }

  it('a wrong secret gets no token', async () => {
    assert.ok(s.gateway, 'gateway not running (earlier step failed)');
    const provider = new ClientCredentialsProvider({ clientId: 'ci-secret', clientSecret: 'wrong', expectedIssuer: s.gateway.url });
    await assert.rejects(whoamiAs(s.serviceUrl, provider));
    assert.equal(provider.tokens(), undefined);
  });
});
