// Loopback helpers: free ports, closing servers, waiting for a URL to answer.
import net from 'node:net';

/** A port that was free on 127.0.0.1 a moment ago (for processes that take `--port`). */
export async function freePort() {
  const srv = net.createServer();
  await new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/** Listens on 127.0.0.1:0 and returns the bound port. */
export async function listenLoopback(server) {
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return server.address().port;
}

/** Closes an http.Server, cutting open (SSE) connections so close() cannot hang. */
export async function closeServer(server) {
  if (!server?.listening) return;
  server.closeAllConnections?.();
  await new Promise((resolve) => server.close(() => resolve()));
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
