//! `tokio-relay [--per-direction] LISTEN=UPSTREAM...`: the simplest relay on tokio's
//! current-thread runtime, until killed.
//!
//! Each direction of each connection is a task that waits for its source to be readable,
//! reads once and writes what it read: the same system calls per message as the epoll relay,
//! through tokio's scheduler and I/O driver. Beside the epoll relay it measures what the
//! runtime alone costs a round trip, apart from anything `simian proxy` does on top.
//! With `--per-direction`, two runtimes on two threads: one reads the clients' sockets, the
//! other the upstream sockets (each socket registered with the runtime that reads it), as
//! the epoll relay's `--per-direction` does.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::runtime::{Builder, Handle};

fn main() {
    let new_runtime = || {
        let runtime = Builder::new_current_thread().enable_all().build().unwrap();
        let handle = runtime.handle().clone();
        std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));
        handle
    };
    simian_bench_peers::run_loops("tokio-relay", new_runtime, accept);
}

/// Accepts with blocking calls, then hands each socket to the runtime that reads it.
fn accept(listener: TcpListener, upstream: &str, to_upstream: &Handle, to_client: &Handle) {
    let Ok(upstream) = upstream.parse::<SocketAddr>() else {
        eprintln!("tokio-relay: upstream {upstream:?} is not an address");
        std::process::exit(2);
    };
    for client in listener.incoming().flatten() {
        let Ok(server) = std::net::TcpStream::connect(upstream) else {
            continue;
        };
        for s in [&client, &server] {
            let _ = s.set_nodelay(true);
            let _ = s.set_nonblocking(true);
        }
        let client = {
            let _in = to_upstream.enter();
            Arc::new(TcpStream::from_std(client).unwrap())
        };
        let server = {
            let _in = to_client.enter();
            Arc::new(TcpStream::from_std(server).unwrap())
        };
        to_upstream.spawn(relay(client.clone(), server.clone()));
        to_client.spawn(relay(server, client));
    }
}

/// Moves bytes from `src` to `dst` until EOF or an error.
async fn relay(src: Arc<TcpStream>, dst: Arc<TcpStream>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if src.readable().await.is_err() {
            return;
        }
        // A short read emptied the socket: its readiness is cleared at once (as tokio's
        // poll_read does, and as `simian proxy` does), so the next wait needs no read that
        // can only say EAGAIN.
        let mut short = None;
        let read = src.try_io(Interest::READABLE, || {
            let n = rustix::io::read(&*src, &mut buf)?;
            if n > 0 && n < buf.len() {
                short = Some(n);
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        let n = match (short, read) {
            (Some(n), _) => n,
            (None, Ok(0)) => return,
            (None, Ok(n)) => n,
            (None, Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            (None, Err(_)) => return,
        };
        let mut sent = 0;
        while sent < n {
            match dst.try_write(&buf[sent..n]) {
                Ok(w) => sent += w,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if dst.writable().await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }
}
