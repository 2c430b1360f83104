//! `bench-sse`: the streaming and process-level measurements of bench/run.sh.
//!
//! - `latency --url URL [--token T] [--streams N]`: opens N SSE streams (POST with a JSON-RPC
//!   body) to a `bench-backend` `/sse/{events}/{interval_ms}` route, directly or through a
//!   proxy, and measures for every event the time from the backend's stamp (`sent_ns`, Unix
//!   ns) to receipt here. Both run on this machine's clock.
//! - `hold --url URL [--token T] --streams N --pid PID [--hold-secs S]`: opens N long-lived
//!   streams to `/hold` through the process PID and reports its VmRSS while they are open.
//! - `startup --bin PATH --port P [--runs N] -- ARGS...`: starts PATH with ARGS, polls
//!   `GET /health` on 127.0.0.1:P in a tight loop, reports start → first response, stops it.
//!
//! - `port`: prints a free loopback port (for the harness to hand to nginx and the gateway).
//!
//! Every result is one line `RESULT key=value ...` on stdout. A plain HTTP/1.1 client over tokio
//! sockets keeps the client's own cost small and the same for every target.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

type BoxError = Box<dyn std::error::Error>;

const BODY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"progress","arguments":{},"_meta":{"progressToken":1}}}"#;

/// Command-line options shared by the subcommands (each uses the ones it needs).
#[derive(Default)]
struct Opts {
    url: String,
    token: String,
    streams: usize,
    pid: u32,
    hold_secs: u64,
    timeout_secs: u64,
    bin: String,
    port: u16,
    runs: usize,
    rest: Vec<String>,
}

fn parse(args: Vec<String>) -> Result<Opts, BoxError> {
    let mut o = Opts { streams: 1, hold_secs: 5, timeout_secs: 60, runs: 5, ..Opts::default() };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            o.rest = it.collect();
            break;
        }
        let v = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--url" => o.url = v,
            "--token" => o.token = v,
            "--streams" => o.streams = v.parse()?,
            "--pid" => o.pid = v.parse()?,
            "--hold-secs" => o.hold_secs = v.parse()?,
            "--timeout-secs" => o.timeout_secs = v.parse()?,
            "--bin" => o.bin = v,
            "--port" => o.port = v.parse()?,
            "--runs" => o.runs = v.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(o)
}

fn main() -> Result<(), BoxError> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        return Err("usage: bench-sse latency|hold|startup OPTIONS".into());
    }
    let cmd = args.remove(0);
    let opts = parse(args)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match cmd.as_str() {
        "latency" => rt.block_on(latency(opts)),
        "hold" => rt.block_on(hold(opts)),
        "startup" => startup(&opts),
        "port" => free_port(),
        other => Err(format!("unknown command {other}").into()),
    }
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> Result<(String, String), BoxError> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    Ok((authority.to_owned(), format!("/{path}")))
}

/// One SSE stream: the raw socket plus the HTTP/1.1 response decoding state.
struct SseConn {
    sock: TcpStream,
    raw: Vec<u8>,
    body: Vec<u8>,
    chunked: bool,
    chunk_left: Option<usize>,
    finished: bool,
}

impl SseConn {
    /// Connects, sends the POST and reads the response head; fails unless it is a 200.
    async fn open(url: &str, token: &str) -> Result<Self, BoxError> {
        let (authority, path) = split_url(url)?;
        let sock = TcpStream::connect(authority.as_str()).await?;
        sock.set_nodelay(true)?;
        let auth =
            if token.is_empty() { String::new() } else { format!("Authorization: Bearer {token}\r\n") };
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\n\
             {auth}Content-Length: {}\r\n\r\n{BODY}",
            BODY.len()
        );
        let mut conn = SseConn {
            sock,
            raw: Vec::new(),
            body: Vec::new(),
            chunked: false,
            chunk_left: None,
            finished: false,
        };
        conn.sock.write_all(req.as_bytes()).await?;
        conn.read_head().await?;
        Ok(conn)
    }

    async fn read_head(&mut self) -> Result<(), BoxError> {
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(i) = find(&self.raw, b"\r\n\r\n") {
                break i;
            }
            let n = self.sock.read(&mut buf).await?;
            if n == 0 {
                return Err("connection closed before the response head".into());
            }
            self.raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&self.raw[..end]).to_ascii_lowercase();
        let status = head.split_whitespace().nth(1).unwrap_or("");
        if status != "200" {
            let body = String::from_utf8_lossy(&self.raw[end + 4..]).chars().take(200).collect::<String>();
            return Err(format!("status {status}: {body}").into());
        }
        if !head.contains("content-type: text/event-stream") {
            return Err("response is not text/event-stream".into());
        }
        self.chunked = head.contains("transfer-encoding: chunked");
        self.raw.drain(..end + 4);
        self.decode();
        Ok(())
    }

    /// Reads more bytes; returns false at the end of the stream.
    async fn read_more(&mut self, buf: &mut [u8]) -> Result<bool, BoxError> {
        if self.finished {
            return Ok(false);
        }
        let n = self.sock.read(buf).await?;
        if n == 0 {
            self.finished = true;
            return Ok(false);
        }
        self.raw.extend_from_slice(&buf[..n]);
        self.decode();
        Ok(true)
    }

    /// Moves decoded body bytes from `raw` to `body` (chunked transfer coding or identity).
    fn decode(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return;
        }
        loop {
            match self.chunk_left {
                None => {
                    let Some(eol) = find(&self.raw, b"\r\n") else { return };
                    let line = String::from_utf8_lossy(&self.raw[..eol]).to_string();
                    let size =
                        usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
                    self.raw.drain(..eol + 2);
                    if size == 0 {
                        self.finished = true;
                        return;
                    }
                    self.chunk_left = Some(size);
                }
                Some(0) => {
                    if self.raw.len() < 2 {
                        return;
                    }
                    self.raw.drain(..2);
                    self.chunk_left = None;
                }
                Some(left) => {
                    if self.raw.is_empty() {
                        return;
                    }
                    let take = left.min(self.raw.len());
                    self.body.extend(self.raw.drain(..take));
                    self.chunk_left = Some(left - take);
                }
            }
        }
    }

    /// Removes and returns every complete event (`\n\n`-terminated) decoded so far.
    fn take_events(&mut self) -> Vec<Vec<u8>> {
        let mut events = Vec::new();
        while let Some(i) = find(&self.body, b"\n\n") {
            events.push(self.body.drain(..i + 2).collect());
        }
        events
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The `"sent_ns":N` stamp of an event, if it has one.
fn sent_ns(event: &[u8]) -> Option<u128> {
    let i = find(event, b"\"sent_ns\":")? + 10;
    let digits: String =
        event[i..].iter().take_while(|b| b.is_ascii_digit()).map(|&b| char::from(b)).collect();
    digits.parse().ok()
}

/// Receives one stream to its end; returns the latency of every stamped event in ns.
async fn receive(url: String, token: String) -> Result<Vec<u64>, BoxError> {
    let mut conn = SseConn::open(&url, &token).await?;
    let mut lat = Vec::new();
    let mut buf = vec![0u8; 16384];
    loop {
        let received = now_ns();
        for event in conn.take_events() {
            if let Some(sent) = sent_ns(&event) {
                lat.push(u64::try_from(received.saturating_sub(sent)).unwrap_or(u64::MAX));
            }
        }
        if !conn.read_more(&mut buf).await? {
            break;
        }
    }
    Ok(lat)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn latency(o: Opts) -> Result<(), BoxError> {
    let tasks: Vec<_> =
        (0..o.streams).map(|_| tokio::spawn(receive_boxed(o.url.clone(), o.token.clone()))).collect();
    let mut all = Vec::new();
    let mut failed = 0;
    for t in tasks {
        match t.await? {
            Ok(lat) => all.extend(lat),
            Err(e) => {
                failed += 1;
                eprintln!("stream failed: {e}");
            }
        }
    }
    all.sort_unstable();
    let mean = if all.is_empty() { 0 } else { all.iter().sum::<u64>() / all.len() as u64 };
    println!(
        "RESULT events={} failed_streams={failed} mean_us={:.1} p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1}",
        all.len(),
        mean as f64 / 1e3,
        percentile(&all, 50.0) as f64 / 1e3,
        percentile(&all, 99.0) as f64 / 1e3,
        percentile(&all, 99.9) as f64 / 1e3,
        all.last().copied().unwrap_or(0) as f64 / 1e3,
    );
    Ok(())
}

/// `receive` with a `Send` error, for `tokio::spawn`.
async fn receive_boxed(url: String, token: String) -> Result<Vec<u64>, String> {
    receive(url, token).await.map_err(|e| e.to_string())
}

/// VmRSS of PID in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Opens one stream, waits for its first event, counts it as open and keeps it open until
/// `release`.
async fn hold_one(
    url: Arc<String>,
    token: Arc<String>,
    gate: Arc<Semaphore>,
    open: Arc<AtomicUsize>,
    release: Arc<Notify>,
) -> Result<(), String> {
    let released = release.notified();
    let mut conn = {
        // Bounded concurrency while connecting: the listen backlog is finite.
        let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
        let mut conn = SseConn::open(&url, &token).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 1024];
        while conn.take_events().is_empty() {
            if !conn.read_more(&mut buf).await.map_err(|e| e.to_string())? {
                return Err("stream ended before its first event".into());
            }
        }
        conn
    };
    open.fetch_add(1, Ordering::Relaxed);
    let mut buf = [0u8; 256];
    tokio::select! {
        () = released => {}
        _ = async { while let Ok(true) = conn.read_more(&mut buf).await { conn.take_events(); } } => {}
    }
    Ok(())
}

async fn hold(o: Opts) -> Result<(), BoxError> {
    let rss_before = rss_kib(o.pid);
    let (url, token) = (Arc::new(o.url.clone()), Arc::new(o.token.clone()));
    let gate = Arc::new(Semaphore::new(256));
    let open = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let started = Instant::now();
    let tasks: Vec<_> = (0..o.streams)
        .map(|_| {
            tokio::spawn(hold_one(url.clone(), token.clone(), gate.clone(), open.clone(), release.clone()))
        })
        .collect();
    let deadline = started + Duration::from_secs(o.timeout_secs);
    // A proxy that caps its backend connections leaves the rest waiting: stop waiting once
    // nothing has opened for a while instead of running into the deadline.
    let (mut last_count, mut last_progress) = (0, Instant::now());
    let mut open_secs = 0.0;
    while open.load(Ordering::Relaxed) < o.streams && Instant::now() < deadline {
        if tasks.iter().all(|t| t.is_finished()) || last_progress.elapsed() > Duration::from_secs(10) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let count = open.load(Ordering::Relaxed);
        if count != last_count {
            (last_count, last_progress) = (count, Instant::now());
            open_secs = started.elapsed().as_secs_f64();
        }
    }
    let opened = open.load(Ordering::Relaxed);
    let mut rss_open = 0;
    for _ in 0..o.hold_secs.max(1) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_open = rss_open.max(rss_kib(o.pid));
    }
    release.notify_waiters();
    let mut failed = 0;
    let mut first_error = String::new();
    for t in tasks {
        t.abort();
        if let Ok(Err(e)) = t.await {
            failed += 1;
            if first_error.is_empty() {
                first_error = e;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_kib(o.pid);
    if !first_error.is_empty() {
        eprintln!("first stream error: {first_error}");
    }
    println!(
        "RESULT streams={} opened={opened} failed={failed} open_secs={open_secs:.2} rss_before_kib={rss_before} rss_open_kib={rss_open} rss_after_close_kib={rss_after}",
        o.streams
    );
    Ok(())
}

fn free_port() -> Result<(), BoxError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    println!("{}", listener.local_addr()?.port());
    Ok(())
}

/// Sends `GET /health` on a fresh connection; the status code when a response came back.
fn health_once(port: u16) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_nodelay(true).ok()?;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        let n = s.read(&mut buf[got..]).ok()?;
        if n == 0 {
            return None;
        }
        got += n;
    }
    std::str::from_utf8(&buf[9..12]).ok()?.parse().ok()
}

fn startup(o: &Opts) -> Result<(), BoxError> {
    let mut times = Vec::new();
    let mut rss = Vec::new();
    let mut status = 0;
    for _ in 0..o.runs {
        let start = Instant::now();
        let mut child =
            Command::new(&o.bin).args(&o.rest).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        let deadline = start + Duration::from_secs(30);
        let answered = loop {
            if let Some(code) = health_once(o.port) {
                break Some(code);
            }
            if Instant::now() > deadline || child.try_wait()?.is_some() {
                break None;
            }
            std::thread::sleep(Duration::from_micros(100));
        };
        let elapsed = start.elapsed();
        rss.push(rss_kib(child.id()));
        child.kill()?;
        child.wait()?;
        let Some(code) = answered else { return Err("the process never answered GET /health".into()) };
        status = code;
        times.push(elapsed.as_secs_f64() * 1e3);
        // Let the port leave the kernel's tables before the next start.
        std::thread::sleep(Duration::from_millis(200));
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    println!(
        "RESULT runs={} status={status} min_ms={:.1} median_ms={median:.1} max_ms={:.1} rss_first_response_kib={}",
        times.len(),
        times.first().copied().unwrap_or(0.0),
        times.last().copied().unwrap_or(0.0),
        rss.iter().max().copied().unwrap_or(0)
    );
    Ok(())
}
