// The MCP service behind the gateway: the official SDK's McpServer over its Streamable HTTP
// server transport (stateful sessions, SSE responses), on node:http at 127.0.0.1:<port>/mcp.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { listenLoopback, closeServer, sleep } from './net.mjs';

export const IDENTITY_HEADERS = ['x-user-id', 'x-user-email', 'x-user-name', 'x-user-provider', 'x-user-avatar'];

function buildServer(log) {
  const server = new McpServer({ name: 'e2e-backend', version: '1.0.0' });
  server.registerTool(
    'whoami',
    { description: 'Echoes the identity headers this request reached the backend with' },
    async (extra) => {
      const headers = extra.requestInfo?.headers ?? {};
      const identity = Object.fromEntries(IDENTITY_HEADERS.map((h) => [h, headers[h] ?? null]));
      const result = { ...identity, authorization_present: headers.authorization !== undefined };
      return { content: [{ type: 'text', text: JSON.stringify(result) }], structuredContent: result };
    },
  );
  server.registerTool(
    'progress',
    {
      description: 'Sends `steps` progress notifications, `delay_ms` apart, then returns their send times',
      inputSchema: { steps: z.number().int().min(1).max(50).default(5), delay_ms: z.number().int().min(0).max(2000).default(200) },
    },
    async ({ steps, delay_ms: delayMs }, extra) => {
      const token = extra._meta?.progressToken;
      const sentAt = [];
      for (let i = 1; i <= steps; i += 1) {
        await sleep(delayMs);
        if (token !== undefined) {
          sentAt.push(Date.now());
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: steps, message: `step ${i}` } });
        }
      }
      log.push({ event: 'progress-done', sentAt });
      const result = { steps, sentAt };
      return { content: [{ type: 'text', text: JSON.stringify(result) }], structuredContent: result };
    },
  );
  return server;
}

/** Starts the backend. `requests` records method, path and headers of every HTTP request. */
export async function startBackend() {
  const sessions = new Map();
  const requests = [];
  const log = [];
  const httpServer = http.createServer(async (req, res) => {
    requests.push({ method: req.method, path: req.url, headers: { ...req.headers }, at: Date.now() });
    try {
      const path = new URL(req.url, 'http://backend').pathname;
      if (path !== '/mcp') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`e2e backend serves /mcp only, got ${req.url}`);
        return;
      }
      let body;
      if (req.method === 'POST') {
        const chunks = [];
        for await (const chunk of req) chunks.push(chunk);
        body = JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
      }
      const sessionId = req.headers['mcp-session-id'];
      let transport = sessionId ? sessions.get(sessionId) : undefined;
      if (!transport) {
        if (sessionId || req.method !== 'POST' || !isInitializeRequest(body)) {
          res.writeHead(sessionId ? 404 : 400, { 'content-type': 'application/json' })
            .end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message: sessionId ? 'Session not found' : 'No session' }, id: null }));
          return;
        }
        transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => sessions.set(id, transport),
        });
        transport.onclose = () => { if (transport.sessionId) sessions.delete(transport.sessionId); };
        await buildServer(log).connect(transport);
      }
      await transport.handleRequest(req, res, body);
    } catch (err) {
      log.push({ event: 'error', error: String(err?.stack || err) });
      if (!res.headersSent) res.writeHead(500).end(String(err));
    }
  });
  const port = await listenLoopback(httpServer);
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    requests,
    log,
    async close() {
      for (const t of sessions.values()) await t.close().catch(() => {});
      await closeServer(httpServer);
    },
  };
}
