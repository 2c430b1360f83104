//! Real servers the tests start for themselves — a `redis-server` and an OpenBao dev server —
//! on free loopback ports, killed when dropped; plus the small helpers around them. Shared by
//! the `storage`, `multi` and `api` test crates (`#[path]` module), so there is one way to run
//! each. `scripts/test-services.sh` installs `redis-server` and `bao`.
// Each test crate uses a different part of this file.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A name (key prefix, directory) no other run or concurrent test uses.
pub fn unique(tag: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("test-{tag}-{}-{nanos}", std::process::id())
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits (20 s at most) until something accepts connections on `port`.
pub async fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening on port {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How to run a test's own redis-server.
#[derive(Default)]
pub struct RedisOptions {
    /// `--requirepass`.
    pub password: Option<String>,
    /// Append-only file with fsync on every write, in a temporary directory, so a kill and
    /// restart keeps the data.
    pub persistent: bool,
}

/// A redis-server of the test's own; `kill` and `spawn` simulate an outage and recovery on
/// the same port.
pub struct RedisServer {
    child: Option<Child>,
    /// The port it listens on.
    pub port: u16,
    /// Its password, if any.
    pub password: Option<String>,
    dir: Option<PathBuf>,
}

impl RedisServer {
    /// Starts one without password or persistence.
    pub async fn start() -> Self {
        Self::start_with(RedisOptions::default()).await
    }

    /// Starts one as `options` say.
    pub async fn start_with(options: RedisOptions) -> Self {
        let dir = options.persistent.then(|| std::env::temp_dir().join(unique("redis")));
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).unwrap();
        }
        let mut server = RedisServer { child: None, port: free_port(), password: options.password, dir };
        server.spawn().await;
        server
    }

    /// (Re)starts the process on its port.
    pub async fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
        match &self.dir {
            Some(dir) => {
                cmd.args(["--appendonly", "yes", "--appendfsync", "always"]).arg("--dir").arg(dir);
            }
            None => {
                cmd.args(["--appendonly", "no"]);
            }
        }
        if let Some(pw) = &self.password {
            cmd.args(["--requirepass", pw]);
        }
        let child =
            cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| {
                panic!("cannot run redis-server ({e}); run scripts/test-services.sh first")
            });
        self.child = Some(child);
        wait_for_port(self.port, "redis-server").await;
    }

    /// Stops the process (the port stays reserved for `spawn`).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The root token of every dev server started here.
pub const BAO_ROOT_TOKEN: &str = "root";

/// An OpenBao dev server (KV v2 at `secret/`, root token [`BAO_ROOT_TOKEN`]).
pub struct Bao {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl Bao {
    /// Starts one on a free port and waits until it reports healthy. A server that exits at
    /// once (its port, or the cluster port above it, taken by a concurrent test in between) is
    /// started again on another port.
    pub async fn start() -> Self {
        let mut tries = 0;
        loop {
            tries += 1;
            match Self::try_start_on(free_port()).await {
                Ok(bao) => return bao,
                Err(why) if tries < 3 => eprintln!("OpenBao did not start ({why}); another port"),
                Err(why) => panic!("OpenBao dev server did not start: {why}"),
            }
        }
    }

    /// Starts one on `port` (to restart a server where a client expects it).
    pub async fn start_on(port: u16) -> Self {
        Self::try_start_on(port).await.unwrap_or_else(|why| panic!("OpenBao dev server did not start: {why}"))
    }

    async fn try_start_on(port: u16) -> Result<Self, String> {
        let bin = std::env::var("BAO_BIN").unwrap_or_else(|_| "bao".into());
        let child = Command::new(&bin)
            .args(["server", "-dev"])
            .arg(format!("-dev-root-token-id={BAO_ROOT_TOKEN}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `{bin}` ({e}): OpenBao is needed for the Vault tests; run scripts/test-services.sh (or set BAO_BIN)")
            });
        let mut bao = Bao { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = bao.api("GET", "/v1/sys/health", None).await {
                return Ok(bao);
            }
            if let Ok(Some(status)) = bao.child.try_wait() {
                return Err(format!("it exited ({status}) on port {port}"));
            }
            if Instant::now() >= deadline {
                return Err(format!("not healthy within 30 s on port {port}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One HTTP/1.0 call to the server's API with the root token: enough for test setup
    /// without another HTTP client.
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> std::io::Result<(u16, Value)> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Vault-Token: {BAO_ROOT_TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await?;
        let status = raw.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let json = raw.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok());
        Ok((status, json.unwrap_or(Value::Null)))
    }

    /// Like [`Bao::api`], asserting a 2xx answer.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, json) = self.api(method, path, body).await.unwrap();
        assert!((200..300).contains(&status), "{method} {path} answered {status}: {json}");
        json
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
