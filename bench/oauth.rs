//! `bench-oauth`: drives the gateway's OAuth endpoints for bench/run.sh.
//!
//! - `token --gateway URL --service ID`: registers a client, runs the browser flow once and
//!   prints the access token (stdout, nothing else).
//! - `bench --gateway URL --service ID [--codes N] [--chains N] [--rotations N]
//!   [--registrations N] [--concurrency N]`: registrations/s; then pre-generates N codes
//!   through the browser flow (untimed), times only their redemptions; then chains refreshes:
//!   `chains` refresh tokens rotated `rotations` times each, the chains running concurrently.
//!   Prints one `RESULT phase=... ` line per phase.
//!
//! The browser flow is followed generically, the way a browser would: redirects are followed,
//! cookies kept, and any HTML form on the way (consent page, the `dev` provider's login page)
//! is submitted with its hidden fields, an approving submit button and a user name for empty
//! text fields; it ends at the client's `redirect_uri` carrying `code`. So it does not depend
//! on the exact field names of those pages.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use base64::Engine;
use sha2::Digest;

type BoxError = Box<dyn std::error::Error>;

const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// Command-line options.
struct Opts {
    gateway: String,
    service: String,
    codes: usize,
    chains: usize,
    rotations: usize,
    registrations: usize,
    concurrency: usize,
}

fn parse(args: Vec<String>) -> Result<Opts, BoxError> {
    let mut o = Opts {
        gateway: String::new(),
        service: "echo".into(),
        codes: 2000,
        chains: 64,
        rotations: 40,
        registrations: 2000,
        concurrency: 32,
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let v = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--gateway" => o.gateway = v.trim_end_matches('/').to_owned(),
            "--service" => o.service = v,
            "--codes" => o.codes = v.parse()?,
            "--chains" => o.chains = v.parse()?,
            "--rotations" => o.rotations = v.parse()?,
            "--registrations" => o.registrations = v.parse()?,
            "--concurrency" => o.concurrency = v.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if o.gateway.is_empty() {
        return Err("--gateway URL is required".into());
    }
    Ok(o)
}

fn main() -> Result<(), BoxError> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        return Err("usage: bench-oauth token|bench --gateway URL [OPTIONS]".into());
    }
    let cmd = args.remove(0);
    let opts = parse(args)?;
    actix_rt::System::new().block_on(async move {
        match cmd.as_str() {
            "token" => token(&opts).await,
            "bench" => bench(&opts).await,
            other => Err(format!("unknown command {other}").into()),
        }
    })
}

fn client(limit: usize) -> awc::Client {
    let connector = awc::Connector::new().limit(limit.max(1));
    awc::Client::builder().connector(connector).disable_redirects().timeout(Duration::from_secs(30)).finish()
}

fn random_b64(bytes: usize) -> String {
    let buf: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// `POST /oauth/register` for a public client; returns its `client_id`.
async fn register(c: &awc::Client, gateway: &str) -> Result<String, BoxError> {
    let body = serde_json::json!({
        "client_name": "bench",
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    });
    let mut res = c.post(format!("{gateway}/oauth/register")).send_json(&body).await?;
    let bytes = res.body().await?;
    if !res.status().is_success() {
        return Err(format!("register: {} {}", res.status(), String::from_utf8_lossy(&bytes)).into());
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes)?;
    v.get("client_id")
        .and_then(|id| id.as_str())
        .map(str::to_owned)
        .ok_or_else(|| "register: no client_id".into())
}

/// The state a browser keeps across the flow: its cookies.
#[derive(Default)]
struct Browser {
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep_cookies(&mut self, res: &awc::ClientResponse<impl Sized>) {
        for h in res.headers().get_all("set-cookie") {
            let Ok(h) = h.to_str() else { continue };
            let pair = h.split(';').next().unwrap_or("");
            let Some((name, value)) = pair.split_once('=') else { continue };
            let expired = h.to_ascii_lowercase().contains("max-age=0");
            if value.is_empty() || expired {
                self.cookies.remove(name.trim());
            } else {
                self.cookies.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    /// Runs the authorization flow from `/oauth/authorize` to the redirect carrying the code.
    async fn authorize(
        &mut self,
        c: &awc::Client,
        o: &Opts,
        client_id: &str,
        challenge: &str,
    ) -> Result<String, BoxError> {
        let state = random_b64(12);
        let query = serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT_URI),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("state", &state),
            ("resource", &format!("{}/{}/mcp", o.gateway, o.service)),
        ])?;
        let mut url = url::Url::parse(&format!("{}/oauth/authorize?{query}", o.gateway))?;
        let mut form: Option<(String, Vec<(String, String)>)> = None;
        for _ in 0..16 {
            let req = match &form {
                Some((method, _)) if method == "post" => c.post(url.as_str()),
                _ => c.get(url.as_str()),
            }
            .insert_header(("cookie", self.cookie_header()))
            .insert_header(("accept", "text/html"));
            let mut res = match form.take() {
                Some((m, fields)) if m == "post" => req.send_form(&fields).await?,
                _ => req.send().await?,
            };
            self.keep_cookies(&res);
            let body = res.body().limit(1 << 20).await?;
            if res.status().is_redirection() {
                let loc = res
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .ok_or("redirect without Location")?;
                let next = url.join(loc)?;
                if next.as_str().starts_with(REDIRECT_URI) {
                    return code_from(&next, &state);
                }
                url = next;
                continue;
            }
            if res.status() != StatusCode::OK {
                return Err(format!("{} {}: {}", res.status(), url.path(), snippet(&body)).into());
            }
            let html = String::from_utf8_lossy(&body);
            let f = html::pick_form(&html)
                .ok_or_else(|| format!("no form at {}: {}", url.path(), snippet(&body)))?;
            let mut next = url.join(&f.action)?;
            if f.method != "post" {
                next.query_pairs_mut().extend_pairs(&f.fields);
            }
            url = next;
            form = Some((f.method, f.fields));
        }
        Err("too many steps in the authorization flow".into())
    }
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}

fn code_from(url: &url::Url, state: &str) -> Result<String, BoxError> {
    let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    if let Some(err) = q.get("error") {
        return Err(format!(
            "authorization error: {err} {}",
            q.get("error_description").cloned().unwrap_or_default()
        )
        .into());
    }
    if q.get("state").map(String::as_str) != Some(state) {
        return Err("state not echoed".into());
    }
    q.get("code").cloned().ok_or_else(|| "redirect without code".into())
}

/// A code with the PKCE verifier that redeems it.
struct Grant {
    code: String,
    verifier: String,
}

async fn one_grant(b: &mut Browser, c: &awc::Client, o: &Opts, client_id: &str) -> Result<Grant, BoxError> {
    let verifier = random_b64(32);
    let code = b.authorize(c, o, client_id, &s256(&verifier)).await?;
    Ok(Grant { code, verifier })
}

/// `POST /oauth/token`; returns (access_token, refresh_token).
async fn token_request(
    c: &awc::Client,
    o: &Opts,
    form: &[(&str, &str)],
) -> Result<(String, String), BoxError> {
    let mut res = c.post(format!("{}/oauth/token", o.gateway)).send_form(&form).await?;
    let bytes = res.body().await?;
    if !res.status().is_success() {
        return Err(format!("token: {} {}", res.status(), snippet(&bytes)).into());
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes)?;
    let get = |k: &str| v.get(k).and_then(|t| t.as_str()).unwrap_or("").to_owned();
    Ok((get("access_token"), get("refresh_token")))
}

async fn redeem(c: &awc::Client, o: &Opts, client_id: &str, g: &Grant) -> Result<(String, String), BoxError> {
    let resource = format!("{}/{}/mcp", o.gateway, o.service);
    token_request(
        c,
        o,
        &[
            ("grant_type", "authorization_code"),
            ("code", &g.code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", client_id),
            ("code_verifier", &g.verifier),
            ("resource", &resource),
        ],
    )
    .await
}

async fn refresh(
    c: &awc::Client,
    o: &Opts,
    client_id: &str,
    token: &str,
) -> Result<(String, String), BoxError> {
    token_request(
        c,
        o,
        &[("grant_type", "refresh_token"), ("refresh_token", token), ("client_id", client_id)],
    )
    .await
}

async fn token(o: &Opts) -> Result<(), BoxError> {
    let c = client(4);
    let client_id = register(&c, &o.gateway).await?;
    let grant = one_grant(&mut Browser::default(), &c, o, &client_id).await?;
    let (access, _) = redeem(&c, o, &client_id, &grant).await?;
    if access.is_empty() {
        return Err("token response without access_token".into());
    }
    println!("{access}");
    Ok(())
}

/// Latency summary of one timed phase.
fn report(phase: &str, ok: usize, failed: usize, elapsed: Duration, mut lat_us: Vec<u64>, first_error: &str) {
    lat_us.sort_unstable();
    let pct = |p: f64| -> u64 {
        if lat_us.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * lat_us.len() as f64).ceil() as usize;
        lat_us[rank.clamp(1, lat_us.len()) - 1]
    };
    println!(
        "RESULT phase={phase} ok={ok} failed={failed} secs={:.3} per_sec={:.1} p50_us={} p99_us={}",
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64().max(1e-9),
        pct(50.0),
        pct(99.0)
    );
    if !first_error.is_empty() {
        eprintln!("{phase}: first error: {first_error}");
    }
}

/// Outcome of a timed phase, shared by its concurrent loops (one thread: `Rc<RefCell>`).
#[derive(Default)]
struct Tally {
    ok: usize,
    failed: usize,
    lat_us: Vec<u64>,
    first_error: String,
}

impl Tally {
    fn record<T>(&mut self, started: Instant, r: &Result<T, BoxError>) {
        self.lat_us.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        match r {
            Ok(_) => self.ok += 1,
            Err(e) => {
                self.failed += 1;
                if self.first_error.is_empty() {
                    self.first_error = e.to_string();
                }
            }
        }
    }
}

async fn bench_registrations(o: &Opts) {
    let c = client(o.concurrency);
    let left = Rc::new(RefCell::new(o.registrations));
    let tally = Rc::new(RefCell::new(Tally::default()));
    let start = Instant::now();
    let loops = (0..o.concurrency).map(|_| {
        let (c, left, tally) = (c.clone(), left.clone(), tally.clone());
        async move {
            while take_one(&left) {
                let t = Instant::now();
                let r = register(&c, &o.gateway).await;
                tally.borrow_mut().record(t, &r);
            }
        }
    });
    futures_util::future::join_all(loops).await;
    let t = tally.take();
    report("registrations", t.ok, t.failed, start.elapsed(), t.lat_us, &t.first_error);
}

fn take_one(left: &RefCell<usize>) -> bool {
    let mut n = left.borrow_mut();
    if *n == 0 {
        return false;
    }
    *n -= 1;
    true
}

/// Pre-generates `n` codes with `workers` concurrent browsers (untimed).
async fn make_grants(c: &awc::Client, o: &Opts, client_id: &str, n: usize) -> Result<Vec<Grant>, BoxError> {
    let left = Rc::new(RefCell::new(n));
    let grants = Rc::new(RefCell::new(Vec::with_capacity(n)));
    let error = Rc::new(RefCell::new(None::<String>));
    let workers = (0..o.concurrency.min(n.max(1))).map(|_| {
        let (left, grants, error) = (left.clone(), grants.clone(), error.clone());
        async move {
            let mut browser = Browser::default();
            while error.borrow().is_none() && take_one(&left) {
                match one_grant(&mut browser, c, o, client_id).await {
                    Ok(g) => grants.borrow_mut().push(g),
                    Err(e) => *error.borrow_mut() = Some(e.to_string()),
                }
            }
        }
    });
    futures_util::future::join_all(workers).await;
    if let Some(e) = error.take() {
        return Err(format!("browser flow: {e}").into());
    }
    Ok(grants.take())
}

async fn bench(o: &Opts) -> Result<(), BoxError> {
    bench_registrations(o).await;

    let c = client(o.concurrency.max(o.chains));
    let client_id = register(&c, &o.gateway).await?;
    let gen_start = Instant::now();
    let grants = make_grants(&c, o, &client_id, o.codes + o.chains).await?;
    eprintln!("generated {} codes in {:.2}s", grants.len(), gen_start.elapsed().as_secs_f64());
    let (timed, for_chains) = grants.split_at(o.codes.min(grants.len()));

    // Redemptions: only the token requests are timed.
    let queue: Rc<RefCell<VecDeque<&Grant>>> = Rc::new(RefCell::new(timed.iter().collect()));
    let tally = Rc::new(RefCell::new(Tally::default()));
    let start = Instant::now();
    let loops = (0..o.concurrency).map(|_| {
        let (c, queue, tally, client_id) = (c.clone(), queue.clone(), tally.clone(), client_id.as_str());
        async move {
            loop {
                let Some(g) = queue.borrow_mut().pop_front() else { break };
                let t = Instant::now();
                let r = redeem(&c, o, client_id, g).await;
                tally.borrow_mut().record(t, &r);
            }
        }
    });
    futures_util::future::join_all(loops).await;
    let t = tally.take();
    report("redemptions", t.ok, t.failed, start.elapsed(), t.lat_us, &t.first_error);

    // Rotations: each chain redeems its own code (untimed), then rotates sequentially.
    let mut seeds = Vec::new();
    for g in for_chains {
        seeds.push(redeem(&c, o, &client_id, g).await?.1);
    }
    let tally = Rc::new(RefCell::new(Tally::default()));
    let start = Instant::now();
    let chains = seeds.into_iter().map(|mut rt| {
        let (c, tally, client_id) = (c.clone(), tally.clone(), client_id.as_str());
        async move {
            for _ in 0..o.rotations {
                let t = Instant::now();
                let r = refresh(&c, o, client_id, &rt).await;
                tally.borrow_mut().record(t, &r);
                match r {
                    Ok((_, next)) if !next.is_empty() => rt = next,
                    _ => break,
                }
            }
        }
    });
    futures_util::future::join_all(chains).await;
    let t = tally.take();
    report("rotations", t.ok, t.failed, start.elapsed(), t.lat_us, &t.first_error);
    Ok(())
}

/// Just enough HTML reading to submit the forms of the flow as a browser would.
mod html {
    /// A form to submit.
    pub struct Form {
        pub method: String,
        pub action: String,
        pub fields: Vec<(String, String)>,
    }

    struct Tag {
        name: String,
        attrs: Vec<(String, String)>,
        /// Text right after the tag, up to the next `<` (a button's label).
        text: String,
    }

    impl Tag {
        fn attr(&self, k: &str) -> Option<&str> {
            self.attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
        }
    }

    fn unescape(s: &str) -> String {
        s.replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&#x27;", "'")
            .replace("&#x2F;", "/")
            .replace("&#47;", "/")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    fn tags(html: &str) -> Vec<Tag> {
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(off) = html[i..].find('<') {
            i += off + 1;
            if html[i..].starts_with("!--") {
                i = html[i..].find("-->").map_or(html.len(), |e| i + e + 3);
                continue;
            }
            let closing = html[i..].starts_with('/');
            let name_start = if closing { i + 1 } else { i };
            let name_end = html[name_start..]
                .find(|ch: char| ch.is_ascii_whitespace() || ch == '>' || ch == '/')
                .map_or(html.len(), |e| name_start + e);
            let word = html[name_start..name_end].to_ascii_lowercase();
            let name = if closing { format!("/{word}") } else { word };
            let (attrs, end) = attributes(html, name_end);
            let text_end = html[end..].find('<').map_or(html.len(), |e| end + e);
            let text = unescape(html[end..text_end].trim());
            i = end;
            if name == "script" || name == "style" {
                i = html[i..].find(&format!("</{name}")).map_or(html.len(), |e| i + e);
            }
            out.push(Tag { name, attrs, text });
        }
        out
    }

    /// Attributes from `start` to the end of the tag; returns them and the index after `>`.
    fn attributes(html: &str, mut i: usize) -> (Vec<(String, String)>, usize) {
        let b = html.as_bytes();
        let mut attrs = Vec::new();
        loop {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
                i += 1;
            }
            if i >= b.len() || b[i] == b'>' {
                return (attrs, (i + 1).min(b.len()));
            }
            let k_end = html[i..]
                .find(|ch: char| ch.is_whitespace() || ch == '=' || ch == '>')
                .map_or(b.len(), |e| i + e);
            let key = html[i..k_end].to_ascii_lowercase();
            i = k_end;
            let mut value = String::new();
            if i < b.len() && b[i] == b'=' {
                i += 1;
                if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                    let q = char::from(b[i]);
                    let v_end = html[i + 1..].find(q).map_or(b.len(), |e| i + 1 + e);
                    value = unescape(&html[i + 1..v_end]);
                    i = (v_end + 1).min(b.len());
                } else {
                    let v_end =
                        html[i..].find(|ch: char| ch.is_whitespace() || ch == '>').map_or(b.len(), |e| i + e);
                    value = unescape(&html[i..v_end]);
                    i = v_end;
                }
            }
            attrs.push((key, value));
        }
    }

    fn approving(t: &Tag) -> i32 {
        let words = format!("{} {} {}", t.attr("name").unwrap_or(""), t.attr("value").unwrap_or(""), t.text)
            .to_ascii_lowercase();
        if ["deny", "cancel", "reject", "decline"].iter().any(|w| words.contains(w)) {
            return -1;
        }
        if [
            "approve", "allow", "accept", "authori", "consent", "continue", "log in", "login", "sign in",
            "yes",
        ]
        .iter()
        .any(|w| words.contains(w))
        {
            return 1;
        }
        0
    }

    /// The form an approving user would submit (the one whose best submit button approves
    /// most; the first on ties), with its fields filled in.
    pub fn pick_form(html: &str) -> Option<Form> {
        let tags = tags(html);
        let mut best: Option<(i32, Form)> = None;
        for (start, form) in tags.iter().enumerate().filter(|(_, t)| t.name == "form") {
            let (score, fields) = fill(tags[start + 1..].iter().take_while(|t| t.name != "/form"));
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                let method = form.attr("method").unwrap_or("get").to_ascii_lowercase();
                let action = form.attr("action").unwrap_or("").to_owned();
                best = Some((score, Form { method, action, fields }));
            }
        }
        best.map(|(_, f)| f)
    }

    /// The fields a browser would send for these form controls, and how approving the
    /// chosen submit button is.
    fn fill<'a>(controls: impl Iterator<Item = &'a Tag>) -> (i32, Vec<(String, String)>) {
        let mut fields = Vec::new();
        let mut submit: Option<(i32, &Tag)> = None;
        for t in controls {
            let default_kind = if t.name == "button" { "submit" } else { "text" };
            let kind = t.attr("type").unwrap_or(default_kind).to_ascii_lowercase();
            if matches!((t.name.as_str(), kind.as_str()), ("button" | "input", "submit")) {
                let score = approving(t);
                if submit.is_none_or(|(s, _)| score > s) {
                    submit = Some((score, t));
                }
                continue;
            }
            let Some(name) = t.attr("name") else { continue };
            let value = match (t.name.as_str(), kind.as_str()) {
                ("input", "checkbox" | "radio") if t.attr("checked").is_some() => {
                    t.attr("value").unwrap_or("on").to_owned()
                }
                ("input", "hidden") => t.attr("value").unwrap_or("").to_owned(),
                ("input", "email") => non_empty(t.attr("value"), "bench@example.com"),
                ("input", "text" | "password" | "search") | ("textarea", _) => {
                    non_empty(t.attr("value"), "bench")
                }
                _ => continue,
            };
            fields.push((name.to_owned(), value));
        }
        let score = submit.map_or(0, |(s, _)| s);
        if let Some(name) = submit.and_then(|(_, t)| t.attr("name")) {
            let value = submit.and_then(|(_, t)| t.attr("value")).unwrap_or("");
            fields.push((name.to_owned(), value.to_owned()));
        }
        (score, fields)
    }

    fn non_empty(v: Option<&str>, default: &str) -> String {
        v.filter(|v| !v.is_empty()).unwrap_or(default).to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::html::pick_form;

    #[test]
    fn consent_form_is_approved_not_denied() {
        let page = r#"<p>Allow <b>bench</b>?</p><!-- <form action="/x"> -->
          <form method="post" action="/oauth/consent?a=1&amp;b=2">
            <input type="hidden" name="pending_id" value="p&quot;1">
            <input type="hidden" name="csrf" value='c2'>
            <button type="submit" name="action" value="deny">Deny</button>
            <button type="submit" name="action" value="approve" class="primary">Allow</button>
          </form>"#;
        let f = pick_form(page).unwrap();
        assert_eq!((f.method.as_str(), f.action.as_str()), ("post", "/oauth/consent?a=1&b=2"));
        let fields: Vec<(&str, &str)> = f.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(fields, [("pending_id", "p\"1"), ("csrf", "c2"), ("action", "approve")]);
    }

    #[test]
    fn empty_login_fields_are_filled_and_the_better_form_wins() {
        let page = r#"<form action="/cancel"><button>Cancel</button></form>
          <form method="POST" action="/oauth/dev/login">
            <input type="hidden" name="state" value="s">
            <input type="text" id="name" name="name" value="" required autofocus>
            <input type="email" name="email" value="">
            <button type="submit" class="primary">Log in</button>
          </form>"#;
        let f = pick_form(page).unwrap();
        assert_eq!(f.action, "/oauth/dev/login");
        let fields: Vec<(&str, &str)> = f.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(fields, [("state", "s"), ("name", "bench"), ("email", "bench@example.com")]);
    }
}
