// A person's browser, reduced to what an OAuth login needs: fetch with manual redirects, a
// cookie jar that behaves like a browser's (cookies belong to a host, not a host and port), and
// HTML forms that are read from the page and submitted the way a person clicking would.

/** Decodes the HTML entities that appear in attribute values and button labels. */
export function decodeEntities(s) {
  return s
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function parseAttrs(src) {
  const attrs = {};
  const re = /([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+)))?/g;
  let m;
  while ((m = re.exec(src))) {
    attrs[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

/**
 * The forms of a page: action (absolute), method, fields (inputs with a name, in order) and
 * submit buttons (name, value, label).
 */
export function parseForms(html, pageUrl) {
  const forms = [];
  const formRe = /<form\b([^>]*)>([\s\S]*?)<\/form\s*>/gi;
  let fm;
  while ((fm = formRe.exec(html))) {
    const attrs = parseAttrs(fm[1]);
    const body = fm[2];
    const fields = [];
    const submits = [];
    const tagRe = /<(input|button|select|textarea)\b([^>]*)>(?:([\s\S]*?)<\/\1\s*>)?/gi;
    let tm;
    while ((tm = tagRe.exec(body))) {
      const tag = tm[1].toLowerCase();
      const a = parseAttrs(tm[2]);
      const type = (a.type || (tag === 'button' ? 'submit' : 'text')).toLowerCase();
      if (tag === 'button' || type === 'submit') {
        if (type !== 'submit') continue;
        const label = decodeEntities((tm[3] || a.value || '').replace(/<[^>]*>/g, '')).trim();
        submits.push({ name: a.name, value: a.value ?? '', label });
      } else if (a.name && !('disabled' in a)) {
        if ((type === 'checkbox' || type === 'radio') && !('checked' in a)) continue;
        fields.push({ name: a.name, value: a.value ?? '', type });
      }
    }
    forms.push({
      action: new URL(attrs.action || pageUrl, pageUrl).href,
      method: (attrs.method || 'get').toUpperCase(),
      fields,
      submits,
    });
  }
  return forms;
}

const APPROVE = /approve|allow|authori[sz]e|accept|consent|continue|sign[- ]?in|log[- ]?in|yes|grant/i;
const DENY = /\b(deny|cancel|reject|decline|abort|no)\b/i;

/** The submit button a person wanting to approve would click, or null. */
export function approveButton(form) {
  const text = (b) => `${b.name || ''} ${b.value || ''} ${b.label || ''}`;
  return form.submits.find((b) => APPROVE.test(text(b)) && !DENY.test(text(b)))
    ?? (form.submits.length === 1 && !DENY.test(text(form.submits[0])) ? form.submits[0] : null);
}

/** Cookies by host (as browsers do: the port does not separate cookies), with path matching. */
export class CookieJar {
  constructor() { this.cookies = []; }

  store(url, response) {
    const u = new URL(url);
    const list = response.headers.getSetCookie?.() ?? [];
    for (const line of list) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = '/';
      let expired = false;
      for (const attr of attrs) {
        const [k, v = ''] = attr.split('=').map((x) => x.trim());
        if (/^path$/i.test(k) && v.startsWith('/')) path = v;
        if (/^max-age$/i.test(k) && Number(v) <= 0) expired = true;
        if (/^expires$/i.test(k) && Date.parse(v) < Date.now()) expired = true;
      }
      this.cookies = this.cookies.filter((c) => !(c.host === u.hostname && c.name === name && c.path === path));
      if (!expired) this.cookies.push({ host: u.hostname, name, value, path });
    }
  }

  header(url) {
    const u = new URL(url);
    return this.cookies
      .filter((c) => c.host === u.hostname && (u.pathname === c.path || u.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

/**
 * Drives a login from `startUrl` until the browser is sent to `stopPrefix` (the OAuth client's
 * redirect URI), following redirects and submitting each page's form: `fill` gives values for
 * text and password fields by name; on pages with a choice the approving button is clicked.
 * Returns the final redirect URL and the trail of hops (for failure messages).
 */
export async function browseUntil(startUrl, { stopPrefix, fill = {}, jar = new CookieJar(), maxSteps = 25, onPage } = {}) {
  const trail = [];
  let request = { method: 'GET', url: startUrl, body: undefined, referer: undefined };
  for (let step = 0; step < maxSteps; step += 1) {
    if (request.url.startsWith(stopPrefix)) return { url: request.url, trail, jar };
    const headers = { 'user-agent': 'mcp-gateway-e2e-browser', accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };
    const cookie = jar.header(request.url);
    if (cookie) headers.cookie = cookie;
    if (request.body) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers.origin = new URL(request.referer).origin;
    }
    if (request.referer) headers.referer = request.referer;
    const res = await fetch(request.url, { method: request.method, headers, body: request.body, redirect: 'manual' });
    jar.store(request.url, res);
    const hop = { method: request.method, url: request.url, status: res.status };
    trail.push(hop);
    if (res.status >= 300 && res.status < 400) {
      const location = res.headers.get('location');
      if (!location) throw new BrowseError(`${res.status} without Location`, trail);
      hop.location = location;
      await res.arrayBuffer();
      request = { method: 'GET', url: new URL(location, request.url).href, referer: request.url };
      continue;
    }
    const text = await res.text();
    hop.body = text.slice(0, 600);
    if (res.status !== 200) throw new BrowseError(`unexpected ${res.status}`, trail);
    onPage?.({ url: request.url, html: text, response: res });
    const forms = parseForms(text, request.url);
    const choice = forms.map((form) => ({ form, button: approveButton(form) })).find((f) => f.button || f.form.submits.length === 0);
    if (!choice) throw new BrowseError('page has no form to submit', trail);
    const params = new URLSearchParams();
    for (const field of choice.form.fields) {
      const value = fill[field.name] ?? field.value;
      params.append(field.name, value);
    }
    if (choice.button?.name) params.append(choice.button.name, choice.button.value);
    hop.submitted = Object.fromEntries([...params].map(([k, v]) => [k, /password|csrf|token/i.test(k) ? '…' : v]));
    if (choice.form.method === 'POST') {
      request = { method: 'POST', url: choice.form.action, body: params.toString(), referer: request.url };
    } else {
      const target = new URL(choice.form.action);
      for (const [k, v] of params) target.searchParams.append(k, v);
      request = { method: 'GET', url: target.href, referer: request.url };
    }
  }
  throw new BrowseError(`no redirect to ${stopPrefix} after ${maxSteps} steps`, trail);
}

/** A failed login, with every hop the browser made. */
export class BrowseError extends Error {
  constructor(message, trail) {
    super(`${message}\n  browser trail:\n${trail.map((h) => `    ${h.method} ${h.url} -> ${h.status}${h.location ? ` Location: ${h.location}` : ''}${h.submitted ? ` submitted ${JSON.stringify(h.submitted)}` : ''}${h.body && h.status !== 200 ? `\n      body: ${h.body.replace(/\s+/g, ' ')}` : ''}`).join('\n')}`);
    this.trail = trail;
  }
}
