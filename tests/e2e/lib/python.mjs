// The Python side of the e2e suite: a virtualenv with the official MCP Python SDK (pinned in
// py/requirements.txt), the SDK's MCP server as a backend, and running py/client_flow.py.
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
export const e2eDir = path.resolve(here, '..');
export const pyDir = path.join(e2eDir, 'py');
const venvDir = path.join(e2eDir, '.venv');
const venvPython = path.join(venvDir, 'bin', 'python');
const requirements = path.join(pyDir, 'requirements.txt');
// Written after a successful install: the hash of the requirements it installed.
const stamp = path.join(venvDir, '.requirements.sha256');

let ready;

/**
 * Creates tests/e2e/.venv and installs py/requirements.txt into it unless the venv already
 * holds exactly that file's pins; returns the venv's python. Quick when nothing changed.
 * $PYTHON picks the interpreter that creates the venv (default python3).
 */
export function ensureVenv() {
  ready ??= (async () => {
    const want = crypto.createHash('sha256').update(fs.readFileSync(requirements)).digest('hex');
    const have = fs.existsSync(stamp) && fs.existsSync(venvPython) ? fs.readFileSync(stamp, 'utf8').trim() : '';
    if (have === want) return venvPython;
    fs.rmSync(venvDir, { recursive: true, force: true });
    const base = process.env.PYTHON || 'python3';
    try {
      await run(base, ['-m', 'venv', venvDir]);
      await run(venvPython, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-input', '-r', requirements], { maxBuffer: 16 << 20 });
    } catch (err) {
      throw new Error(`could not set up ${venvDir} with ${base}: ${err.message}\n${err.stderr ?? ''}`);
    }
    fs.writeFileSync(stamp, `${want}\n`);
    return venvPython;
  })();
  return ready;
}

/** Reads a child's stdout as JSON lines, handing each parsed object to `onObject`. */
function jsonLines(stream, onObject, output) {
  const rl = readline.createInterface({ input: stream });
  rl.on('line', (line) => {
    output.push(line);
    if (!line.startsWith('{')) return;
    try { onObject(JSON.parse(line)); } catch { /* not ours */ }
  });
}

/**
 * Starts py/backend.py (the Python SDK's MCPServer behind uvicorn on 127.0.0.1:0). Same shape
 * as lib/backend.mjs's startBackend: url, requests (method, path, headers of every HTTP
 * request), close(); plus logs() for failure messages.
 */
export async function startPythonBackend({ timeoutMs = 20000 } = {}) {
  const python = await ensureVenv();
  const child = spawn(python, [path.join(pyDir, 'backend.py')], { cwd: e2eDir, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = [];
  const requests = [];
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  child.stderr.on('data', (d) => output.push(d.toString()));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`py/backend.py not ready within ${timeoutMs} ms:\n${output.join('')}`)), timeoutMs);
    child.on('exit', () => { clearTimeout(timer); reject(new Error(`py/backend.py exited (${JSON.stringify(exited)}):\n${output.join('')}`)); });
    jsonLines(child.stdout, (obj) => {
      if (obj.ready) { clearTimeout(timer); resolve(obj.ready); }
      if (obj.request) requests.push(obj.request);
    }, output);
  });
  return {
    url,
    requests,
    logs: () => output.join('\n').split('\n').slice(-60).join('\n'),
    async close() {
      if (exited !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(timer);
    },
  };
}

/**
 * Runs py/client_flow.py with `args` until it exits (or `timeoutMs`), and returns its exit
 * code, the JSON object it printed last on stdout (its report) and its stderr.
 */
export async function runPythonClient(args, { timeoutMs = 60000 } = {}) {
  const python = await ensureVenv();
  const child = spawn(python, [path.join(pyDir, 'client_flow.py'), ...args], { cwd: e2eDir, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout = [];
  const stderr = [];
  let report = null;
  jsonLines(child.stdout, (obj) => { report = obj; }, stdout);
  child.stderr.on('data', (d) => stderr.push(d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = await new Promise((resolve) => child.on('close', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  return { code, signal, report, stdout: stdout.join('\n'), stderr: stderr.join('') };
}
