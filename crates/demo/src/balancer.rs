//! The demo's load balancer, in front of the fleet.
//!
//! Robust mode is what a well-configured production balancer does: round robin over healthy
//! instances, active health checks, and a retry of the (idempotent) request on another
//! instance when one fails. Fragile mode is round robin and nothing else, so a killed instance
//! turns into errors until its replacement is up.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::fleet::Slots;
use crate::http::get;

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
const HEALTH_INTERVAL: Duration = Duration::from_millis(100);

struct Balancer {
    slots: Slots,
    next: AtomicUsize,
    robust: bool,
}

impl Balancer {
    /// The next backend in round-robin order, skipping unhealthy ones in robust mode.
    fn pick(&self) -> Option<SocketAddr> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        let n = slots.len();
        for _ in 0..n {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
            let s = &slots[i];
            if let Some(addr) = s.addr.filter(|_| !self.robust || s.healthy) {
                return Some(addr);
            }
        }
        None
    }

    fn mark_unhealthy(&self, addr: SocketAddr) {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slots.iter_mut().find(|s| s.addr == Some(addr)) {
            s.healthy = false;
        }
    }

    async fn forward(&self, path: &str) -> Response<Full<Bytes>> {
        let attempts = if self.robust { 3 } else { 1 };
        let mut last = String::from("no backend available");
        for _ in 0..attempts {
            let Some(addr) = self.pick() else { break };
            match get(addr, path, ATTEMPT_TIMEOUT).await {
                Ok((status, body)) if status < 500 => {
                    let mut r = Response::new(Full::new(body));
                    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                    return r;
                }
                Ok((status, _)) => last = format!("{addr} answered {status}"),
                Err(e) => {
                    if self.robust {
                        self.mark_unhealthy(addr);
                    }
                    last = e;
                }
            }
        }
        let mut r = Response::new(Full::new(Bytes::from(format!("bad gateway: {last}\n"))));
        *r.status_mut() = StatusCode::BAD_GATEWAY;
        r
    }
}

/// Starts the balancer on a loopback port; returns its address. It runs until `stop` is set.
pub async fn start(
    slots: Slots,
    robust: bool,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let balancer = Arc::new(Balancer {
        slots: slots.clone(),
        next: AtomicUsize::new(0),
        robust,
    });
    if robust {
        tokio::spawn(health_checks(slots, stop.clone()));
    }
    let mut stop_accept = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    stream.set_nodelay(true).ok();
                    let balancer = balancer.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                            let balancer = balancer.clone();
                            async move { Ok::<_, Infallible>(balancer.forward(req.uri().path()).await) }
                        });
                        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                    });
                }
                _ = stop_accept.changed() => break,
            }
        }
    });
    Ok(addr)
}

async fn health_checks(slots: Slots, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HEALTH_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let targets: Vec<(usize, SocketAddr)> = {
            let s = slots.read().unwrap_or_else(|e| e.into_inner());
            s.iter()
                .enumerate()
                .filter_map(|(i, s)| s.addr.map(|a| (i, a)))
                .collect()
        };
        for (i, addr) in targets {
            let healthy = matches!(
                get(addr, "/health", Duration::from_millis(250)).await,
                Ok((200, _))
            );
            let mut s = slots.write().unwrap_or_else(|e| e.into_inner());
            if s[i].addr == Some(addr) {
                s[i].healthy = healthy;
            }
        }
    }
}
