//! Connections to backends and the per-worker pool of idle keep-alive ones: connect (TCP, TLS),
//! reuse checks and idle expiry; separate from the exchange so connection lifetime is in one place.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;

use super::backend_url::Origin;
use super::ClientError;

/// How long an idle pooled connection is kept: below the 5 s idle timeout of common backend
/// servers (actix-web, uvicorn, Node), so a connection the backend is about to close is rarely
/// picked.
const IDLE_KEEP_ALIVE: Duration = Duration::from_secs(3);
/// Idle connections kept per backend; more are closed when they come back.
const MAX_IDLE_PER_ORIGIN: usize = 1024;
/// TCP connect (and TLS handshake) limit, independent of the service timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keepalive: probes after this much silence, then every [`KEEPALIVE_INTERVAL`]; a
/// backend host that vanished (no FIN, no RST) is noticed within about a minute and a half
/// instead of never, which ends an event stream from it.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 5;

/// A connection to a backend.
pub(super) enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    /// Whether an idle connection can carry another request: the backend has neither closed it
    /// nor sent anything unasked. No system call unless the socket was reported readable. A TLS
    /// connection is not probed (a byte read past TLS would break its record stream; a server
    /// may send session tickets late): the retry covers it.
    fn is_reusable(&self) -> bool {
        match self {
            Conn::Plain(tcp) => {
                let mut probe = [0u8; 1];
                matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            Conn::Tls(_) => true,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The worker's reaper: every second while the pool lives, idle connections past their time
/// or closed by the backend are closed.
async fn reap(pool: std::rc::Weak<Pool>) {
    loop {
        actix_web::rt::time::sleep(Duration::from_secs(1)).await;
        let Some(pool) = pool.upgrade() else { return };
        pool.reap_once();
    }
}

/// One backend's idle connections with the time each was returned, oldest first.
type IdleQueue = VecDeque<(Conn, Instant)>;

/// Idle keep-alive connections of one worker, by backend. Shared (`Rc`) with the response
/// bodies that hand their connection back.
#[derive(Default)]
pub struct Pool {
    idle: RefCell<HashMap<Rc<Origin>, IdleQueue>>,
    tls: OnceCell<tokio_rustls::TlsConnector>,
    reaping: Cell<bool>,
}

impl Pool {
    /// The most recently used live idle connection to `origin`; stale ones are closed.
    pub(super) fn take(&self, origin: &Origin) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let queue = idle.get_mut(origin)?;
        let now = Instant::now();
        while let Some((conn, since)) = queue.pop_back() {
            if now.duration_since(since) >= IDLE_KEEP_ALIVE {
                // Everything older is stale too.
                queue.clear();
                return None;
            }
            if conn.is_reusable() {
                return Some(conn);
            }
        }
        None
    }

    pub(super) fn put(self: &Rc<Self>, origin: &Rc<Origin>, conn: Conn) {
        if !self.reaping.replace(true) {
            actix_web::rt::spawn(reap(Rc::downgrade(self)));
        }
        let mut idle = self.idle.borrow_mut();
        let queue = match idle.get_mut(origin) {
            Some(queue) => queue,
            None => idle.entry(origin.clone()).or_default(),
        };
        let now = Instant::now();
        while queue.front().is_some_and(|(_, since)| now.duration_since(*since) >= IDLE_KEEP_ALIVE) {
            queue.pop_front();
        }
        if queue.len() < MAX_IDLE_PER_ORIGIN {
            queue.push_back((conn, now));
        }
    }

    pub(super) async fn connect(&self, origin: &Origin) -> Result<Conn, ClientError> {
        let connect = async {
            let tcp = match origin.host.parse::<IpAddr>() {
                Ok(ip) => TcpStream::connect(SocketAddr::new(ip, origin.port)).await?,
                Err(_) => TcpStream::connect((origin.host.as_str(), origin.port)).await?,
            };
            tcp.set_nodelay(true)?;
            let keepalive = socket2::TcpKeepalive::new()
                .with_time(KEEPALIVE_IDLE)
                .with_interval(KEEPALIVE_INTERVAL)
                .with_retries(KEEPALIVE_RETRIES);
            socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive)?;
            if !origin.tls {
                return Ok(Conn::Plain(tcp));
            }
            let name = ServerName::try_from(origin.host.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let tls = self.tls_connector().connect(name, tcp).await?;
            Ok(Conn::Tls(Box::new(tls)))
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(result) => result.map_err(ClientError::Connect),
            Err(_) => Err(ClientError::Connect(io::ErrorKind::TimedOut.into())),
        }
    }

    /// Closes the idle connections that are stale or that the backend closed (each would
    /// otherwise sit in `CLOSE_WAIT` until the next request to its backend).
    fn reap_once(&self) {
        let now = Instant::now();
        let mut idle = self.idle.borrow_mut();
        for queue in idle.values_mut() {
            queue.retain(|(conn, since)| now.duration_since(*since) < IDLE_KEEP_ALIVE && conn.is_reusable());
        }
        idle.retain(|_, queue| !queue.is_empty());
    }

    fn tls_connector(&self) -> &tokio_rustls::TlsConnector {
        self.tls.get_or_init(|| {
            let roots = tokio_rustls::rustls::RootCertStore::from_iter(
                webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
            );
            let mut config = tokio_rustls::rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            tokio_rustls::TlsConnector::from(Arc::new(config))
        })
    }
}
