// The MCP client side: the official SDK's Client and StreamableHTTPClientTransport, with an
// in-memory OAuthClientProvider whose redirectToAuthorization plays the person's browser.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { browseUntil, CookieJar } from './browser.mjs';

/**
 * OAuthClientProvider keeping everything in memory. The SDK's auth() drives discovery,
 * registration, PKCE and token requests; this class only stores what it is given and, when
 * sent to the authorization URL, logs in through the browser and keeps the code it came back with.
 */
export class InMemoryOAuthProvider {
  constructor({ redirectUrl, login, password = 'any-password' }) {
    this._redirectUrl = redirectUrl;
    this.login = login;
    this.password = password;
    this.jar = new CookieJar();
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this._discovery = undefined;
    this.tokenHistory = [];
    this.authorizationUrls = [];
    this.lastRedirect = undefined;
    this.lastTrail = undefined;
  }

  get redirectUrl() { return this._redirectUrl; }

  get clientMetadata() {
    return {
      client_name: 'mcp-gateway e2e (TypeScript SDK)',
      redirect_uris: [this._redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  clientInformation() { return this._client; }
  saveClientInformation(info) { this._client = info; }
  tokens() { return this._tokens; }
  saveTokens(tokens) { this._tokens = tokens; this.tokenHistory.push({ ...tokens, savedAt: Date.now() }); }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() {
    if (!this._verifier) throw new Error('no code verifier saved');
    return this._verifier;
  }
  saveDiscoveryState(s) { this._discovery = s; }
  discoveryState() { return this._discovery; }
  invalidateCredentials(scope) {
    if (scope === 'all' || scope === 'client') this._client = undefined;
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
    if (scope === 'all' || scope === 'discovery') this._discovery = undefined;
  }

  /** The person's browser: from the gateway's authorize URL to the redirect back here. */
  async redirectToAuthorization(url) {
    this.authorizationUrls.push(new URL(url));
    const { url: back, trail } = await browseUntil(url.href, {
      stopPrefix: this._redirectUrl,
      jar: this.jar,
      fill: { login: this.login, password: this.password },
    });
    this.lastTrail = trail;
    this.lastRedirect = new URL(back);
  }
}

/**
 * Records every HTTP exchange the SDK makes (auth requests included), with the form body of
 * token requests, so tests can tell which grant was used.
 */
export function recordingFetch(log) {
  return async (input, init = {}) => {
    const url = typeof input === 'string' ? input : input.url ?? String(input);
    const entry = { method: init.method ?? 'GET', url: String(url), at: Date.now() };
    if (init.body instanceof URLSearchParams) entry.form = Object.fromEntries(init.body);
    else if (typeof init.body === 'string' && /x-www-form-urlencoded/.test(JSON.stringify(init.headers ?? {}))) entry.form = Object.fromEntries(new URLSearchParams(init.body));
    log.push(entry);
    const res = await fetch(input, init);
    entry.status = res.status;
    entry.wwwAuthenticate = res.headers.get('www-authenticate');
    return res;
  };
}

/**
 * Connects an SDK Client to `serverUrl`, going through the OAuth flow if the server asks:
 * connect → 401 → auth() → redirectToAuthorization (browser) → UnauthorizedError →
 * finishAuth(code) → connect again with a fresh transport.
 */
export async function connectWithOAuth(serverUrl, provider, { httpLog = [], headers = {} } = {}) {
  const fetchFn = recordingFetch(httpLog);
  const makeTransport = () => new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider, fetch: fetchFn, requestInit: { headers } });
  let client = new Client({ name: 'mcp-gateway-e2e', version: '1.0.0' });
  let transport = makeTransport();
  try {
    await client.connect(transport);
    return { client, transport, loggedIn: false };
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
  }
  const back = provider.lastRedirect;
  if (!back) throw new Error('SDK reported Unauthorized but never sent the browser to log in');
  const error = back.searchParams.get('error');
  if (error) throw new Error(`authorization failed: ${error} ${back.searchParams.get('error_description') ?? ''} (${back.href})`);
  const code = back.searchParams.get('code');
  if (!code) throw new Error(`redirect back without code: ${back.href}`);
  await transport.finishAuth(code);
  await transport.close().catch(() => {});
  client = new Client({ name: 'mcp-gateway-e2e', version: '1.0.0' });
  transport = makeTransport();
  await client.connect(transport);
  return { client, transport, loggedIn: true };
}
