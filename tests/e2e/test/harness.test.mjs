// The harness on its own, without the gateway: the IdP completes a real authorization-code
// login through the scripted browser, and the SDK client reaches the backend's tools with
// progress streamed. If these fail, the gateway tests' failures say nothing about the gateway.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startIdp, accountClaims } from '../lib/idp.mjs';
import { startBackend } from '../lib/backend.mjs';
import { browseUntil, parseForms, approveButton } from '../lib/browser.mjs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';

test('form parser reads hidden fields and picks the approving button', () => {
  const html = `<form method="post" action="/oauth/consent">
    <input type="hidden" name="csrf" value="a&amp;b">
    <input type='hidden' name=request_id value=r1>
    <button type="submit" name="decision" value="deny">Deny</button>
    <button name="decision" value="approve">Allow <b>access</b></button>
  </form>`;
  const [form] = parseForms(html, 'http://127.0.0.1:1/oauth/authorize?x=1');
  assert.equal(form.action, 'http://127.0.0.1:1/oauth/consent');
  assert.equal(form.method, 'POST');
  assert.deepEqual(form.fields.map((f) => [f.name, f.value]), [['csrf', 'a&b'], ['request_id', 'r1']]);
  assert.deepEqual(approveButton(form), { name: 'decision', value: 'approve', label: 'Allow access' });
});

test('oidc-provider: code flow with PKCE through the scripted browser, claims in ID token and userinfo', async (t) => {
  const redirectUri = 'http://127.0.0.1:9/oauth/callback';
  const idp = await startIdp({ redirectUri });
  t.after(() => idp.close());
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const auth = new URL(idp.endpoints.authorization);
  Object.entries({
    client_id: idp.clientId, response_type: 'code', redirect_uri: redirectUri, scope: 'openid email profile',
    state: 'st-1', nonce: 'n-1', code_challenge: challenge, code_challenge_method: 'S256',
  }).forEach(([k, v]) => auth.searchParams.set(k, v));
  const login = `alice-${crypto.randomBytes(3).toString('hex')}`;
  const { url } = await browseUntil(auth.href, { stopPrefix: redirectUri, fill: { login, password: 'x' } });
  const back = new URL(url);
  assert.equal(back.searchParams.get('state'), 'st-1');
  assert.equal(back.searchParams.get('iss'), idp.issuer);
  const code = back.searchParams.get('code');
  assert.ok(code, `no code in ${url}`);
  const res = await fetch(idp.endpoints.token, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${idp.clientId}:${idp.clientSecret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier }),
  });
  const tokens = await res.json();
  assert.equal(res.status, 200, JSON.stringify(tokens));
  const idClaims = JSON.parse(Buffer.from(tokens.id_token.split('.')[1], 'base64url'));
  const want = accountClaims(login);
  for (const k of ['sub', 'email', 'name', 'picture']) assert.equal(idClaims[k], want[k], `id_token ${k}`);
  const ui = await (await fetch(idp.endpoints.userinfo, { headers: { authorization: `Bearer ${tokens.access_token}` } })).json();
  for (const k of ['sub', 'email', 'name', 'picture']) assert.equal(ui[k], want[k], `userinfo ${k}`);
});

test('backend: SDK client calls whoami and receives progress notifications one by one', async (t) => {
  const backend = await startBackend();
  const client = new Client({ name: 'harness', version: '1.0.0' });
  t.after(async () => { await client.close().catch(() => {}); await backend.close(); });
  await client.connect(new StreamableHTTPClientTransport(new URL(backend.url), { requestInit: { headers: { 'x-user-id': 'direct' } } }));
  const tools = await client.listTools();
  assert.deepEqual(tools.tools.map((x) => x.name).sort(), ['progress', 'whoami']);
  const who = await client.callTool({ name: 'whoami', arguments: {} });
  assert.equal(who.structuredContent['x-user-id'], 'direct');
  assert.equal(who.structuredContent.authorization_present, false);
  const arrivals = [];
  const result = await client.callTool({ name: 'progress', arguments: { steps: 5, delay_ms: 200 } }, CallToolResultSchema, {
    onprogress: (p) => arrivals.push({ at: Date.now(), progress: p.progress }),
  });
  assert.deepEqual(arrivals.map((a) => a.progress), [1, 2, 3, 4, 5]);
  const { sentAt } = result.structuredContent;
  assert.ok(arrivals[0].at < sentAt[4] - 400, `first progress arrived at ${arrivals[0].at}, last sent at ${sentAt[4]}`);
});
