//! Redis backend: a bb8 pool of multiplexed connections, every key under `key_prefix`.
//!
//! The pool uses its own small connection manager rather than `bb8_redis`'s: that one cannot
//! set connect/response timeouts and, to notice a dead connection, pings on every checkout (a
//! second round trip per operation). Here a connection is marked broken when a command on it
//! fails at the connection level, so the pool drops it and dials again: that is what lets the
//! store recover by itself after Redis restarts. Single use is Redis's own `GETDEL`.
//!
//! Revocations go to a stream (`{key_prefix}revocations`, capped at [`REVOCATIONS_KEPT`]
//! entries). Each instance follows it with a blocking `XREAD` on a connection of its own,
//! remembering the last entry id: a new revocation arrives in well under a second, and after a
//! lost connection or a Redis restart the reader resumes where it stopped, so nothing published
//! meanwhile is missed (which plain pub/sub would drop). A fresh instance reads the stream from
//! the start, so it learns every revocation still kept.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bb8_redis::bb8::{ErrorSink, ManageConnection, Pool, RunError};
use bb8_redis::redis::{
    self, aio::MultiplexedConnection, AsyncConnectionConfig, Cmd, FromRedisValue, RedisError, RetryMethod,
};
use secrecy::ExposeSecret;

use crate::config::RedisSettings;
use crate::core::metrics::StoreMetrics;
use crate::core::revocation::{Revocation, RevocationSet};
use crate::core::store::{Revocations, Store, StoreError};

/// Revocation stream entries kept (approximately). An entry is moot once its tokens expire,
/// so this only needs to exceed the revocations of one access-token lifetime.
const REVOCATIONS_KEPT: u64 = 100_000;
/// How long one blocking read of the revocation stream waits for news.
const REVOCATION_BLOCK_MS: u64 = 1000;
/// Pause before dialling again after the revocation reader lost Redis.
const REVOCATION_RETRY: Duration = Duration::from_millis(500);

/// The Redis backend. Cloning shares the pool.
#[derive(Clone)]
pub struct RedisStore {
    pool: Pool<Manager>,
    prefix: Arc<str>,
    command_timeout: Duration,
    last_error: LastError,
    /// `host:port`, for messages (never the password).
    address: Arc<str>,
    /// How the revocation reader dials its own connection. Background tasks hold a `Weak` of
    /// it and stop once every clone of the store is dropped.
    dial: Arc<Dial>,
    /// Where the revocation reader reports how late entries arrive.
    metrics: Option<StoreMetrics>,
}

/// A client and its connect timeout.
struct Dial {
    client: redis::Client,
    connect_timeout: Duration,
}

impl RedisStore {
    /// Builds the pool and checks Redis answers within `connect_timeout_ms`, so a gateway
    /// configured for Redis refuses to start (with the reason) when Redis is down.
    pub async fn connect(settings: &RedisSettings) -> Result<Self, StoreError> {
        let store = Self::new(settings)?;
        store.ping().await.map_err(|e| match e {
            StoreError::Unavailable(why) => {
                StoreError::Unavailable(format!("cannot reach Redis at {}: {why}", store.address))
            }
            other => other,
        })?;
        Ok(store)
    }

    /// Builds the pool without touching the network (connections are made on first use).
    /// Needs a tokio runtime: the pool spawns its reaper task.
    fn new(settings: &RedisSettings) -> Result<Self, StoreError> {
        let url = connection_url(settings)?;
        let address = format!("{}:{}", url.host_str().unwrap_or(""), url.port().unwrap_or(6379));
        let client = redis::Client::open(url.as_str())
            .map_err(|e| StoreError::Backend(format!("invalid Redis settings: {e}")))?;
        let connect_timeout = Duration::from_millis(settings.connect_timeout_ms.max(1));
        let command_timeout = Duration::from_millis(settings.command_timeout_ms.max(1));
        let last_error = LastError::default();
        let manager = Manager { client: client.clone(), connect_timeout, command_timeout };
        let pool = Pool::builder()
            .max_size(settings.max_connections.max(1))
            .connection_timeout(connect_timeout)
            // Broken connections are detected from command errors instead (see module doc).
            .test_on_check_out(false)
            .error_sink(Box::new(last_error.clone()))
            .build_unchecked(manager);
        let prefix = Arc::from(settings.key_prefix.as_str());
        Ok(RedisStore {
            pool,
            prefix,
            command_timeout,
            last_error,
            address: address.into(),
            dial: Arc::new(Dial { client, connect_timeout }),
            metrics: None,
        })
    }

    /// Reports revocation propagation delays to `metrics` (set before
    /// [`Revocations::watch_revocations`]).
    pub fn report_to(&mut self, metrics: StoreMetrics) {
        self.metrics = Some(metrics);
    }

    pub(super) fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs one command on a pooled connection, bounded by the command timeout.
    pub(super) async fn run<T: FromRedisValue>(&self, cmd: Cmd) -> Result<T, StoreError> {
        let mut conn = self.pool.get().await.map_err(|e| self.pool_error(e))?;
        match tokio::time::timeout(self.command_timeout, cmd.query_async::<T>(&mut conn.inner)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                let error = classify(&e);
                // A connection-level failure leaves the multiplexed connection useless: let
                // the pool drop it and dial a fresh one next time.
                conn.broken = matches!(error, StoreError::Unavailable(_));
                Err(error)
            }
            Err(_) => {
                conn.broken = true;
                Err(StoreError::Unavailable("Redis command timed out".into()))
            }
        }
    }

    fn pool_error(&self, e: RunError<RedisError>) -> StoreError {
        match e {
            RunError::User(e) => classify(&e),
            RunError::TimedOut => {
                let why = self.last_error.get().unwrap_or_else(|| "no connection in time".into());
                StoreError::Unavailable(format!("Redis connection failed: {why}"))
            }
        }
    }
}

/// The connection URL: `url` when set, otherwise one built from host/port/password/db/ssl.
fn connection_url(s: &RedisSettings) -> Result<url::Url, StoreError> {
    if let Some(raw) = s.url.as_deref().filter(|u| !u.trim().is_empty()) {
        let parsed = url::Url::parse(raw.trim())
            .map_err(|e| StoreError::Backend(format!("invalid storage.redis.url: {e}")))?;
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            return Err(StoreError::Backend(
                "storage.redis.url must start with redis:// or rediss://".into(),
            ));
        }
        return Ok(parsed);
    }
    let scheme = if s.ssl { "rediss" } else { "redis" };
    let host = if s.host.contains(':') { format!("[{}]", s.host) } else { s.host.clone() };
    let mut url = url::Url::parse(&format!("{scheme}://{host}:{}/{}", s.port, s.db))
        .map_err(|e| StoreError::Backend(format!("invalid storage.redis host/port: {e}")))?;
    // `password: "${REDIS_PASSWORD}"` with the variable unset expands to "": no password.
    if let Some(password) = s.password.as_ref().filter(|p| !p.expose_secret().is_empty()) {
        // `set_password` percent-encodes; redis-rs decodes it again.
        url.set_password(Some(password.expose_secret()))
            .map_err(|_| StoreError::Backend("storage.redis.password cannot be set".into()))?;
    }
    Ok(url)
}

/// Connection-level failures (refused, reset, timed out, server loading) are `Unavailable`:
/// callers answer 503 and the pool reconnects. Anything else is a real backend error.
fn classify(e: &RedisError) -> StoreError {
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.retry_method(),
            RetryMethod::Reconnect
                | RetryMethod::ReconnectFromInitialConnections
                | RetryMethod::WaitAndRetry
                | RetryMethod::RetryImmediately
        );
    if transient {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

/// Milliseconds for `PX`; Redis refuses 0, so a zero TTL becomes the shortest one.
fn px(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Store for RedisStore {
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(px(ttl));
        }
        self.run::<()>(cmd).await
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value).arg("NX");
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(px(ttl));
        }
        // `SET .. NX` answers OK when it wrote and nil when the key existed.
        Ok(self.run::<Option<String>>(cmd).await?.is_some())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(key));
        self.run(cmd).await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        // GETDEL (Redis 6.2+) removes and returns in one command: of concurrent takers across
        // every gateway instance, exactly one sees the value.
        let mut cmd = redis::cmd("GETDEL");
        cmd.arg(self.key(key));
        self.run(cmd).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(key));
        self.run::<i64>(cmd).await.map(drop)
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        // SCAN with a glob of the (escaped) prefix, cursor by cursor: never KEYS, which
        // blocks the server for the whole keyspace.
        let pattern = format!("{}*", glob_escape(&self.key(prefix)));
        let (mut cursor, mut found) = (0u64, Vec::new());
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000);
            let (next, batch): (u64, Vec<String>) = self.run(cmd).await?;
            found.extend(batch.into_iter().filter_map(|k| k.strip_prefix(&*self.prefix).map(str::to_owned)));
            if next == 0 {
                return Ok(found);
            }
            cursor = next;
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.run(redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Backend(format!("unexpected PING answer: {pong}")))
        }
    }
}

impl Revocations for RedisStore {
    async fn publish_revocation(&self, rev: &Revocation) -> Result<(), StoreError> {
        let body = serde_json::to_vec(rev).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.key("revocations"))
            .arg("MAXLEN")
            .arg("~")
            .arg(REVOCATIONS_KEPT)
            .arg("*")
            .arg("r")
            .arg(body);
        self.run::<String>(cmd).await.map(drop)
    }

    fn watch_revocations(&self, into: RevocationSet) {
        let reader = RevocationReader {
            client: self.dial.client.clone(),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.dial.connect_timeout))
                .set_response_timeout(Some(
                    Duration::from_millis(REVOCATION_BLOCK_MS) + self.command_timeout,
                )),
            stream: self.key("revocations"),
            alive: Arc::downgrade(&self.dial),
            metrics: self.metrics.clone(),
            into,
            last_id: "0-0".into(),
        };
        tokio::spawn(reader.run());
    }
}

/// Follows the revocation stream into a local set (see the module docs).
struct RevocationReader {
    client: redis::Client,
    config: AsyncConnectionConfig,
    stream: String,
    alive: Weak<Dial>,
    metrics: Option<StoreMetrics>,
    into: RevocationSet,
    /// Id of the last entry applied; reading resumes after it.
    last_id: String,
}

/// `XREAD` answer: per stream, its entries as (id, flat field/value list).
type StreamReply = Option<Vec<(String, Vec<(String, Vec<Vec<u8>>)>)>>;

impl RevocationReader {
    async fn run(mut self) {
        let mut was_down = false;
        while self.alive.strong_count() > 0 {
            let result = match self.client.get_multiplexed_async_connection_with_config(&self.config).await {
                Ok(mut conn) => {
                    if was_down {
                        log::info!("revocation reader reconnected to Redis");
                        was_down = false;
                    }
                    self.follow(&mut conn).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                if !was_down {
                    log::warn!("revocation reader lost Redis ({}); retrying", classify(&e));
                    was_down = true;
                }
                tokio::time::sleep(REVOCATION_RETRY).await;
            }
        }
    }

    /// Reads until the connection fails or the store is dropped.
    async fn follow(&mut self, conn: &mut MultiplexedConnection) -> Result<(), RedisError> {
        while self.alive.strong_count() > 0 {
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT").arg(1000).arg("BLOCK").arg(REVOCATION_BLOCK_MS);
            cmd.arg("STREAMS").arg(&self.stream).arg(&self.last_id);
            let reply: StreamReply = cmd.query_async(conn).await?;
            for (_, entries) in reply.into_iter().flatten() {
                for (id, fields) in entries {
                    self.apply(&fields);
                    self.report_delay(&id);
                    self.last_id = id;
                }
            }
        }
        Ok(())
    }

    /// How late entry `id` arrived: a stream id starts with the Redis server's clock, in
    /// milliseconds, when the entry was added. Entries older than a minute are the backlog
    /// read at start or after an outage, not propagation.
    fn report_delay(&self, id: &str) {
        let Some(metrics) = &self.metrics else { return };
        let Some(added_ms) = id.split('-').next().and_then(|ms| ms.parse::<u64>().ok()) else { return };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let delay = now.saturating_sub(Duration::from_millis(added_ms));
        if delay < Duration::from_secs(60) {
            metrics.propagated(delay);
        }
    }

    fn apply(&self, fields: &[Vec<u8>]) {
        for pair in fields.chunks_exact(2) {
            if pair[0] == b"r" {
                match serde_json::from_slice::<Revocation>(&pair[1]) {
                    Ok(rev) => self.into.insert(&rev.id, rev.until),
                    Err(e) => log::warn!("skipping a malformed revocation entry: {e}"),
                }
            }
        }
    }
}

/// `text` with Redis glob characters escaped, to match itself only.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Makes multiplexed connections with the configured timeouts.
struct Manager {
    client: redis::Client,
    connect_timeout: Duration,
    command_timeout: Duration,
}

/// A pooled connection and whether a command found it dead.
struct Conn {
    inner: MultiplexedConnection,
    broken: bool,
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = RedisError;

    async fn connect(&self) -> Result<Conn, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout));
        let inner = self.client.get_multiplexed_async_connection_with_config(&config).await?;
        Ok(Conn { inner, broken: false })
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), RedisError> {
        redis::cmd("PING").query_async::<()>(&mut conn.inner).await
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken
    }
}

/// Keeps the last connection error the pool saw, so a timed-out checkout can say why
/// (refused, authentication failed, ...) instead of only "timed out".
#[derive(Clone, Default, Debug)]
struct LastError(Arc<Mutex<Option<String>>>);

impl LastError {
    fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ErrorSink<RedisError> for LastError {
    fn sink(&self, error: RedisError) {
        log::debug!("Redis connection error: {error}");
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
    }

    fn boxed_clone(&self) -> Box<dyn ErrorSink<RedisError>> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn settings() -> RedisSettings {
        RedisSettings { host: "127.0.0.1".into(), port: 6390, db: 2, ..RedisSettings::default() }
    }

    #[test]
    fn url_from_parts_encodes_the_password() {
        let s = RedisSettings { password: Some(SecretString::from("p@ss:/word")), ..settings() };
        let url = connection_url(&s).unwrap();
        assert_eq!(url.scheme(), "redis");
        assert_eq!(url.port(), Some(6390));
        assert_eq!(url.path(), "/2");
        assert_eq!(url.password(), Some("p%40ss%3A%2Fword"));
        let info = redis::Client::open(url.as_str()).unwrap();
        assert_eq!(info.get_connection_info().redis_settings().password(), Some("p@ss:/word"));
    }

    #[test]
    fn url_setting_overrides_parts_and_must_be_redis() {
        let s = RedisSettings { url: Some("redis://example:7000/3".into()), ..settings() };
        assert_eq!(connection_url(&s).unwrap().as_str(), "redis://example:7000/3");
        let bad = RedisSettings { url: Some("http://example".into()), ..settings() };
        assert!(matches!(connection_url(&bad), Err(StoreError::Backend(_))));
    }

    #[test]
    fn ssl_selects_rediss() {
        let s = RedisSettings { ssl: true, ..settings() };
        assert_eq!(connection_url(&s).unwrap().scheme(), "rediss");
    }

    #[tokio::test]
    async fn tls_settings_are_accepted() {
        let s = RedisSettings { ssl: true, ..settings() };
        assert!(RedisStore::new(&s).is_ok(), "rustls is built in");
    }

    #[test]
    fn zero_ttl_is_the_shortest_expiry() {
        assert_eq!(px(Duration::ZERO), 1);
        assert_eq!(px(Duration::from_millis(1500)), 1500);
    }
}
