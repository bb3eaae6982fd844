//! Helpers shared by the proxy's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;

use simian_proxy::{NewProxy, Registry};
use tokio::net::TcpListener;

/// A loopback server that echoes every connection until it closes.
pub async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Creates an enabled proxy `name` to `upstream` on a free loopback port; returns its address.
pub fn proxy(r: &Registry, name: &str, upstream: SocketAddr) -> SocketAddr {
    let p = r
        .create(NewProxy {
            name: name.into(),
            listen: "127.0.0.1:0".into(),
            upstream: upstream.to_string(),
            enabled: true,
        })
        .unwrap();
    p.listen.parse().unwrap()
}
