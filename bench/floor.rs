//! bench-floor: the least a proxy built from the gateway's own parts can cost. An actix-web
//! server configured as the gateway's (`TCP_NODELAY` on accepted connections, half-closed
//! clients dropped, one worker per core, mimalloc) whose one handler forwards every request
//! to one backend with the gateway's backend client (`mcp_gateway::proxy::client`: hyper-util's
//! pool, `TCP_QUICKACK`, TCP keepalive) and streams the answer back. The client's headers are
//! copied both ways as the gateway copies them (`proxy::headers`: hop-by-hop ones dropped, as
//! any proxy must); nothing else: no token, no forwarding or `x-user-*` headers,
//! no audit trail, no metrics, no routing beyond one default service.
//!
//! `bench/run.sh` measures it beside nginx and the gateway: its throughput is the ceiling of
//! any gateway on actix-web and this client, and its RSS with open streams the floor of their
//! memory per stream (`bench/PROFILE.md`).
//!
//!   bench-floor --port P --backend http://127.0.0.1:B
//!
//! A request for `/x` goes to `http://127.0.0.1:B/x`.
//!
//! Prints `listening 127.0.0.1:P` once bound. Not part of CI.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::TcpListener;
use std::rc::Rc;

use actix_web::body::SizedStream;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use mcp_gateway::proxy::client::{self, BackendUrl, Client, RequestBody, TlsOptions};
use mcp_gateway::proxy::headers;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A worker's client, and the backend URL of each path asked for (parsed once per path, as
/// the gateway parses each service's URL once).
struct Backend {
    base: String,
    urls: RefCell<HashMap<String, Rc<BackendUrl>>>,
    client: Client,
}

impl Backend {
    fn url(&self, path: &str) -> Option<Rc<BackendUrl>> {
        if let Some(url) = self.urls.borrow().get(path) {
            return Some(url.clone());
        }
        let url = Rc::new(BackendUrl::parse(&format!("{}{path}", self.base)).ok()?);
        self.urls.borrow_mut().insert(path.to_owned(), url.clone());
        Some(url)
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let port: u16 = arg("--port").and_then(|p| p.parse().ok()).unwrap_or(0);
    let Some(backend) = arg("--backend") else {
        eprintln!("usage: bench-floor --port P --backend http://127.0.0.1:B");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    println!("listening {}", listener.local_addr()?);
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            let client = Client::new(&TlsOptions::default()).unwrap_or_else(|e| panic!("client: {e}"));
            let backend =
                Backend { base: backend.trim_end_matches('/').to_owned(), urls: RefCell::default(), client };
            App::new().app_data(web::Data::new(backend)).default_service(web::to(forward))
        })
        .on_connect(|conn, _| {
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
            }
        })
        .h1_allow_half_closed(false)
        .workers(workers)
        .listen(listener)?
        .run()
        .await
    })
}

/// Forwards the request (its body read whole, as the gateway reads every ordinary MCP
/// message) and streams the answer back, framed as the backend framed it.
async fn forward(req: HttpRequest, body: web::Bytes, backend: web::Data<Backend>) -> HttpResponse {
    let Some(url) = backend.url(req.path()) else {
        return HttpResponse::BadGateway().body("bad backend URL");
    };
    let mut headers = http::HeaderMap::with_capacity(req.headers().len());
    headers::copy_request_headers(req.headers(), &mut headers);
    let request = client::Request { method: req.method(), query: req.query_string(), headers };
    let body = match body.is_empty() {
        true => RequestBody::None,
        false => RequestBody::Full(body),
    };
    let sent = backend
        .client
        .send::<futures_util::stream::Empty<Result<web::Bytes, client::ClientError>>, _>(&url, request, body);
    let (head, body) = match sent.await {
        Ok(answer) => answer,
        Err(failure) => return HttpResponse::BadGateway().body(failure.err.to_string()),
    };
    let mut res = HttpResponse::build(head.status);
    for (name, value) in headers::response_headers(&head.headers) {
        res.append_header((name.clone(), value.clone()));
    }
    match head.body_length {
        Some(len) => res.body(SizedStream::new(len, body)),
        None => res.streaming(body),
    }
}
