//! The endpoint's listener: `GET /metrics` over HTTP/1.1 (hyper), a few connections at once,
//! each bounded in time, so neither many scrapers nor a slow one can hold the run back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::text::CONTENT_TYPE;
use super::{Exposition, Listening};
use crate::error::{Error, Result};

/// Scrape connections served at once; one more waits in the kernel's backlog until one ends.
const MAX_CONNECTIONS: usize = 4;
/// Longest life of one scrape connection (keep-alive included): a scraper that stalls is cut.
const CONNECTION_BOUND: Duration = Duration::from_secs(10);
/// Longest wait for a request's headers.
const HEADER_BOUND: Duration = Duration::from_secs(2);

/// Binds `addr` (`--metrics-listen`) and serves `board` there until the [`Listening`] is
/// dropped. A bind failure is a setup error naming the address.
pub(crate) async fn serve(addr: SocketAddr, board: Exposition) -> Result<Listening> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Setup(format!("--metrics-listen {addr}: cannot listen: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Setup(format!("--metrics-listen {addr}: {e}")))?;
    let task = tokio::spawn(accept_loop(listener, board));
    Ok(Listening { addr, task })
}

/// Accepts while a connection slot is free; each connection is served on a task of its own.
async fn accept_loop(listener: TcpListener, board: Exposition) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of descriptors or an aborted handshake: the run matters more than a scrape.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let board = board.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let board = board.clone();
                async move { Ok::<_, Infallible>(respond(&board, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_BOUND)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_BOUND, conn).await;
            drop(slot);
        });
    }
}

/// `GET /metrics` (or `HEAD`): the page; any other path 404, any other method 405.
fn respond(board: &Exposition, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, kind: &'static str, body: Bytes| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
        r
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found: the tester serves GET /metrics\n"),
        );
    }
    match *req.method() {
        Method::GET => reply(StatusCode::OK, CONTENT_TYPE, board.page()),
        Method::HEAD => reply(StatusCode::OK, CONTENT_TYPE, Bytes::new()),
        _ => {
            let mut r = reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                Bytes::from_static(b"method not allowed: GET /metrics\n"),
            );
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            r
        }
    }
}
