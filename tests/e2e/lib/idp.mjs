// The upstream identity provider: oidc-provider (a certified OpenID Provider we did not write)
// in-process on 127.0.0.1 with its development login form, one static confidential client
// (the gateway) and accounts whose claims are derived from the login name typed in the form.
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';
import { listenLoopback, closeServer } from './net.mjs';

/** Claims the IdP returns for a login name; tests compare the gateway's x-user-* headers with these. */
export function accountClaims(login) {
  return {
    sub: login,
    email: `${login}@example.test`,
    email_verified: true,
    name: `E2E User ${login}`,
    picture: `https://avatars.example.test/${login}.png`,
  };
}

/**
 * Starts oidc-provider. `redirectUri` is the gateway's /oauth/callback (the gateway's port is
 * chosen before it starts, so it is known here). `tokenAuthMethod` is how the static client
 * must authenticate at the token endpoint.
 */
export async function startIdp({ redirectUri, tokenAuthMethod = 'client_secret_basic' }) {
  const server = http.createServer();
  const port = await listenLoopback(server);
  const issuer = `http://127.0.0.1:${port}`;
  const client = {
    client_id: 'mcp-gateway-e2e',
    client_secret: crypto.randomBytes(24).toString('hex'),
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: tokenAuthMethod,
  };
  const provider = new Provider(issuer, {
    clients: [client],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'none'],
    pkce: { required: () => true },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'picture'],
    },
    // Scope-requested claims also go into the ID token, so a gateway that reads either the
    // ID token or userinfo finds them.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true }, userinfo: { enabled: true } },
    async findAccount(ctx, id) {
      return { accountId: id, claims: async () => accountClaims(id) };
    },
    ttl: { AccessToken: 600, IdToken: 600, AuthorizationCode: 60, Interaction: 600, Session: 600, Grant: 600 },
  });
  // Every request the IdP sees, so a test failure can say what the gateway sent upstream.
  const requests = [];
  const events = [];
  provider.on('grant.success', (ctx) => events.push({ event: 'grant.success', grant: ctx.oidc.params?.grant_type }));
  provider.on('grant.error', (ctx, err) => events.push({ event: 'grant.error', error: err.message, description: err.error_description }));
  provider.on('server_error', (ctx, err) => events.push({ event: 'server_error', error: String(err?.stack || err) }));
  const callback = provider.callback();
  server.on('request', (req, res) => {
    const auth = req.headers.authorization || '';
    requests.push({ method: req.method, path: req.url, authScheme: auth.split(' ')[0] || null });
    callback(req, res);
  });
  return {
    issuer,
    clientId: client.client_id,
    clientSecret: client.client_secret,
    endpoints: {
      authorization: `${issuer}/auth`,
      token: `${issuer}/token`,
      userinfo: `${issuer}/me`,
    },
    requests,
    events,
    provider,
    close: () => closeServer(server),
  };
}
