// The gateway's own pages in a real browser: Debian's chromium, headless, driven by
// playwright-core (no browser download). One person approves a client on the consent page and
// signs in on the dev provider; another, whom the access rule does not name, gets the deny page;
// the first opens /account and revokes the grant. Every page is checked for console errors and
// for horizontal overflow at a phone's 390 px, and kept as a screenshot under
// tests/e2e/output/browser/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import crypto from 'node:crypto';
import { chromium } from 'playwright-core';

import { startGateway, repoRoot } from '../lib/gateway.mjs';
import { freePort, listenLoopback, closeServer } from '../lib/net.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = path.join(repoRoot, 'tests/e2e/output/browser');

let gateway;
let callback;
let browser;

before(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  // The client's redirect URI: a loopback page that only says it got a code.
  callback = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>client</title><p>code received</p>');
  });
  await listenLoopback(callback);
  const port = await freePort();
  gateway = await startGateway({
    port,
    config: {
      host: '127.0.0.1',
      port,
      issuer: `http://127.0.0.1:${port}`,
      session_secret: crypto.randomBytes(32).toString('hex'),
      storage: { type: 'memory' },
      oauth_providers: { dev: {} },
      access: { emails: ['alice@example.com'] },
      mcp_services: {
        calc: { name: 'Calculator with a rather long name that has to wrap on a phone', url: 'http://127.0.0.1:9/mcp', oauth_provider: 'dev' },
      },
    },
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  await gateway?.stop();
  if (callback) await closeServer(callback);
});

/** A phone-sized page that records console errors. */
async function phone() {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  return { context, page, errors };
}

/** Screenshot `name`, and no horizontal overflow at 390 px. */
async function check(page, name) {
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });
  const { scroll, inner } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
  assert.ok(scroll <= inner, `${name}: the page is ${scroll} px wide in a ${inner} px window`);
}

/** A registered client and the authorization URL a client would open. */
async function authorizationUrl() {
  const redirect = `http://127.0.0.1:${callback.address().port}/cb`;
  const reg = await fetch(`${gateway.url}/oauth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'Browser test client with a long name, to wrap', redirect_uris: [redirect], token_endpoint_auth_method: 'none' }),
  });
  assert.equal(reg.status, 201);
  const { client_id: clientId } = await reg.json();
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const q = new URLSearchParams({
    response_type: 'code', client_id: clientId, redirect_uri: redirect, state: 'st',
    code_challenge: challenge, code_challenge_method: 'S256', resource: `${gateway.url}/calc/mcp`,
  });
  return { url: `${gateway.url}/oauth/authorize?${q}`, clientId, redirect, verifier };
}

/** The client's code exchange for the code on `page`'s URL. */
async function exchange(request, page) {
  const code = new URL(page.url()).searchParams.get('code');
  const res = await fetch(`${gateway.url}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code, redirect_uri: request.redirect, client_id: request.clientId,
      code_verifier: request.verifier, resource: `${gateway.url}/calc/mcp`,
    }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

/** Consent page → Allow → dev login as `email`; returns the page after the callback. */
async function approveAs(page, email, tag) {
  const request = await authorizationUrl();
  await page.goto(request.url);
  await check(page, `${tag}-1-consent`);
  await page.getByRole('button', { name: 'Allow' }).click();
  await page.waitForURL(/\/oauth\/dev\/login/);
  await check(page, `${tag}-2-dev-login`);
  await page.fill('#name', email.split('@')[0]);
  await page.fill('#email', email);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForLoadState('load');
  return request;
}

test('consent, dev login, the deny page and /account with revoke, at 390 px', async () => {
  const alice = await phone();
  const request = await approveAs(alice.page, 'alice@example.com', 'alice');
  assert.match(alice.page.url(), /\/cb\?code=/, 'alice is let in: the client gets a code');
  const tokens = await exchange(request, alice.page);

  const bob = await phone();
  await approveAs(bob.page, 'bob@example.com', 'bob');
  assert.match(await bob.page.textContent('body'), /bob@example\.com/, 'the deny page names the account');
  assert.doesNotMatch(bob.page.url(), /\/cb\?/, 'the client gets no code for bob');
  assert.match(await bob.page.textContent('body'), /Calculator/, 'and the service');
  await check(bob.page, 'bob-3-denied');

  await alice.page.goto(`${gateway.url}/account`);
  await alice.page.waitForURL(/\/oauth\/dev\/login/);
  await alice.page.fill('#name', 'alice');
  await alice.page.fill('#email', 'alice@example.com');
  await alice.page.getByRole('button', { name: 'Log in' }).click();
  await alice.page.waitForURL(/\/account$/);
  await check(alice.page, 'alice-3-account');
  assert.match(await alice.page.textContent('body'), /Browser test client/);
  await alice.page.getByRole('button', { name: 'Revoke' }).click();
  await alice.page.waitForURL(/\/account$/);
  assert.match(await alice.page.textContent('body'), /No application has access as you/);
  await check(alice.page, 'alice-4-revoked');
  const refreshed = await fetch(`${gateway.url}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: request.clientId }),
  });
  assert.equal(refreshed.status, 400, 'the revoked grant no longer refreshes');

  // The deny page is itself a 403, which the browser reports once; anything else is a fault.
  const denyPage = /Failed to load resource: the server responded with a status of 403/;
  assert.equal(bob.errors.filter((e) => denyPage.test(e)).length, 1, String(bob.errors));
  assert.deepEqual([...alice.errors, ...bob.errors.filter((e) => !denyPage.test(e))], [], 'no console errors');
  await alice.context.close();
  await bob.context.close();
});
