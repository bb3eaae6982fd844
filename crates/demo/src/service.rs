//! The small HTTP service each demo instance runs (`simian demo-service`).
//!
//! It listens on a loopback port, prints `listening ADDR` once ready, answers `GET /` and
//! `GET /health`, and drains in-flight requests on SIGTERM. It exits by itself when its
//! standard input closes, so an instance never outlives the demo that started it, even if the
//! demo is killed with SIGKILL.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// Runs the service on `addr` (port 0 picks a free port) until SIGTERM or stdin EOF.
pub fn run(addr: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(serve(addr));
    // The stdin watcher blocks a thread on read(2); do not wait for it.
    runtime.shutdown_background();
    result
}

async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let slot = std::env::var("SIMIAN_LABEL_SLOT").unwrap_or_else(|_| "?".into());
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {addr}")?;
        out.flush()?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::pin!(stdin_closed);
    let body: Bytes = format!("hello from {slot}\n").into();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                stream.set_nodelay(true).ok();
                let body = body.clone();
                connections.spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let body = body.clone();
                        async move {
                            let response = match req.uri().path() {
                                "/health" => Response::new(Full::new(Bytes::from_static(b"ok\n"))),
                                "/" => Response::new(Full::new(body)),
                                _ => {
                                    let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
                                    *r.status_mut() = StatusCode::NOT_FOUND;
                                    r
                                }
                            };
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new().keep_alive(false).serve_connection(TokioIo::new(stream), svc).await;
                });
            }
            _ = term.recv() => break,
            _ = &mut stdin_closed => return Ok(()),
        }
    }
    // SIGTERM: stop accepting, let in-flight requests finish (briefly), exit.
    drop(listener);
    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}
