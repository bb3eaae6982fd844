//! The congestion control of the proxy's own sockets, read back from the sockets themselves:
//! on a connection that stays on loopback the proxy's two sockets use the algorithm chosen
//! for loopback, and the client's and the server's keep the system's.
//!
//! The registry runs in this process, so its sockets are descriptors of this process: each
//! is duplicated with pidfd_getfd(2) and asked for its addresses and `TCP_CONGESTION`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use rustix::net::sockopt::tcp_congestion;
use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};
use simian_proxy::{LoopbackCongestion, Registry, RegistryConfig};
use support::{echo_server, proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The TCP sockets of this process with their local and peer addresses and algorithm.
fn tcp_sockets() -> Vec<(SocketAddr, SocketAddr, String)> {
    let me = pidfd_open(getpid(), PidfdFlags::empty()).unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
        })
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|fd| pidfd_getfd(&me, fd, PidfdGetfdFlags::empty()).ok())
        .filter_map(|dup| {
            let algorithm = tcp_congestion(&dup).ok()?;
            let socket = std::net::TcpStream::from(dup);
            Some((
                socket.local_addr().ok()?,
                socket.peer_addr().ok()?,
                algorithm,
            ))
        })
        .collect()
}

fn system_algorithm() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .unwrap()
        .trim()
        .to_string()
}

/// Connects a client through a proxy with `congestion` to an echo server, and returns the
/// algorithms of (client, proxy's client side, proxy's server side, server).
async fn algorithms(congestion: LoopbackCongestion) -> [String; 4] {
    let upstream = echo_server().await;
    let registry = Arc::new(Registry::new(RegistryConfig {
        loopback_congestion: congestion,
        ..RegistryConfig::default()
    }));
    let listen = proxy(&registry, "echo", upstream);
    let mut client = TcpStream::connect(listen).await.unwrap();
    // One echo: by then the proxy has dialed and set up both of its sockets.
    client.write_all(b"x").await.unwrap();
    let mut byte = [0u8; 1];
    client.read_exact(&mut byte).await.unwrap();
    let client_addr = client.local_addr().unwrap();
    let sockets = tcp_sockets();
    let find = |what: &str, pick: &dyn Fn(&SocketAddr, &SocketAddr) -> bool| {
        let found: Vec<&String> = sockets
            .iter()
            .filter(|(l, p, _)| pick(l, p))
            .map(|(_, _, a)| a)
            .collect();
        assert_eq!(found.len(), 1, "{what}: {sockets:?}");
        found[0].clone()
    };
    let proxy_upstream_side = |l: &SocketAddr, p: &SocketAddr| *p == upstream && *l != listen;
    [
        find("client", &|l, p| *l == client_addr && *p == listen),
        find("proxy, client side", &|l, p| {
            *l == listen && *p == client_addr
        }),
        find("proxy, server side", &proxy_upstream_side),
        find("server", &|l, _| *l == upstream),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_loopback_the_proxy_sockets_use_the_chosen_algorithm_and_the_ends_keep_theirs() {
    let system = system_algorithm();
    // Reno is built into every kernel and every process may choose it; CUBIC where the
    // system already uses Reno.
    let chosen = if system == "reno" { "cubic" } else { "reno" };
    let congestion = LoopbackCongestion::resolve(Some(chosen)).unwrap();
    assert_eq!(congestion, LoopbackCongestion::Algorithm(chosen.into()));
    let [client, proxy_client_side, proxy_server_side, server] = algorithms(congestion).await;
    assert_eq!(client, system);
    assert_eq!(proxy_client_side, chosen);
    assert_eq!(proxy_server_side, chosen);
    assert_eq!(server, system);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_system_choice_every_socket_keeps_the_system_algorithm() {
    let system = system_algorithm();
    let all = algorithms(LoopbackCongestion::System).await;
    assert_eq!(
        all,
        [system.clone(), system.clone(), system.clone(), system]
    );
}
