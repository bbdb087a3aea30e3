//! Streamable HTTP (`agent serve --http ADDR`) at `/mcp` (rmcp's service), behind a bearer
//! token when one is set, with Host/Origin checks against DNS rebinding and a request-body
//! limit. Clients speaking 2025-11-25 get sessions (`initialize`); 2026-07-28 clients are
//! served statelessly (`server/discover`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::ServeError;
use super::handler::Server;

/// Where and to whom [`serve_http`] listens.
pub struct HttpOptions {
    /// The address to listen on (port 0: any free port).
    pub addr: SocketAddr,
    /// Bearer token clients must send (`Authorization: Bearer TOKEN`).
    pub token: Option<String>,
    /// Host names requests may carry in `Host` besides the loopback ones.
    pub allow_hosts: Vec<String>,
    /// Browser origins requests may come from besides the loopback ones
    /// (`https://app.example:443`, `http://host:*`).
    pub allow_origins: Vec<String>,
    /// Largest request body, in bytes.
    pub max_body: usize,
}

type Service = StreamableHttpService<Server, LocalSessionManager>;

/// JSON-RPC's code for a request that is not JSON.
const PARSE_ERROR: i64 = -32700;
/// JSON-RPC's code for a request that is not a valid request.
const INVALID_REQUEST: i64 = -32600;
/// Server-defined: not authorized.
const UNAUTHORIZED: i64 = -32001;

/// A JSON-RPC error as an HTTP response (for requests refused before rmcp sees them).
fn refuse(status: StatusCode, message: &str) -> Response<BoxBody<Bytes, Infallible>> {
    let code = match status {
        StatusCode::UNAUTHORIZED => UNAUTHORIZED,
        StatusCode::BAD_REQUEST => PARSE_ERROR,
        _ => INVALID_REQUEST,
    };
    let body = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}}).to_string();
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Bearer"),
        );
    }
    r
}

/// Compares without an early exit, so the time taken says nothing about the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(
    service: Arc<Service>,
    token: Option<Arc<str>>,
    max_body: usize,
    req: Request<Incoming>,
) -> Response<BoxBody<Bytes, Infallible>> {
    if req.uri().path() != "/mcp" {
        return refuse(StatusCode::NOT_FOUND, "not found: the MCP endpoint is /mcp");
    }
    if let Some(token) = token {
        let given = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same(given.as_bytes(), token.as_bytes()) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized: send Authorization: Bearer <token>",
            );
        }
    }
    if req.method() != hyper::Method::POST {
        return service.handle(req).await;
    }
    // The body is read here, within the limit, and checked to be JSON, so that an oversized or
    // malformed request gets a JSON-RPC error (rmcp answers the latter in plain text).
    let (parts, body) = req.into_parts();
    let bytes = match http_body_util::Limited::new(body, max_body).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body larger than {max_body} bytes"),
            );
        }
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the request body: {e}"),
            );
        }
    };
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        return refuse(
            StatusCode::BAD_REQUEST,
            &format!("parse error: the body is not JSON ({e})"),
        );
    }
    service
        .handle(Request::from_parts(parts, Full::new(bytes)))
        .await
}

/// Serves `server` at `/mcp` on `opts.addr` until `shutdown` is cancelled.
pub async fn serve_http(
    server: Server,
    opts: HttpOptions,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    listen(server, opts, shutdown)
        .await
        .map_err(ServeError::Transport)
}

async fn listen(
    server: Server,
    opts: HttpOptions,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", opts.addr))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // Loopback names always; more only when asked for (a non-loopback bind needs its own).
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    hosts.extend(opts.allow_hosts.iter().cloned());
    if !local.ip().is_loopback() && !local.ip().is_unspecified() {
        hosts.push(local.ip().to_string());
    }
    // A web page the user visits must not drive the agent: a browser's request carries its
    // page's Origin, refused unless it is loopback or allowed (rmcp checks it only when the
    // list is not empty, so it never is).
    let mut origins: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .flat_map(|h| [format!("http://{h}:*"), format!("https://{h}:*")])
        .collect();
    origins.extend(opts.allow_origins.iter().cloned());
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .with_max_request_body_bytes(opts.max_body)
        .with_cancellation_token(shutdown.child_token());
    let service = Arc::new(StreamableHttpService::new(
        move || Ok(server.clone()),
        LocalSessionManager::default().into(),
        config,
    ));
    let token: Option<Arc<str>> = opts.token.as_deref().map(Arc::from);
    // The address on stderr, for scripts that bind port 0.
    eprintln!("agent serve: ready on http://{local}/mcp");
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    continue;
                }
            },
            _ = shutdown.cancelled() => return Ok(()),
        };
        let (service, token, max_body) = (service.clone(), token.clone(), opts.max_body);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let (service, token) = (service.clone(), token.clone());
                async move { Ok::<_, Infallible>(handle(service, token, max_body, req).await) }
            });
            if let Err(e) = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}
