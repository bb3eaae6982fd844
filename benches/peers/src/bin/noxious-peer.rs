//! `noxious-peer LISTEN=UPSTREAM...`: one noxious proxy per pair, no toxics, until killed.
//!
//! The same calls noxious's own server makes to start a proxy (`initialize_proxy`, then
//! `run_proxy` on a multi-threaded tokio runtime), without its HTTP API, which the
//! throughput and round-trip phases of the benchmark do not use.

use noxious::proxy::{ProxyConfig, ProxyRunner, Runner, Toxics};
use noxious::signal::{Close, Stop};
use noxious::socket::TcpListener;

#[tokio::main]
async fn main() {
    let mut running = Vec::new();
    let (stop, _stopper) = Stop::new();
    let mut senders = Vec::new();
    for (i, (listen, upstream)) in simian_bench_peers::pairs("noxious-peer")
        .into_iter()
        .enumerate()
    {
        let config = ProxyConfig {
            name: format!("peer{i}"),
            listen: listen.clone(),
            upstream,
            enabled: true,
            rand_seed: None,
        };
        let (listener, info) =
            ProxyRunner::initialize_proxy::<TcpListener>(config, Toxics::empty())
                .await
                .unwrap_or_else(|e| {
                    eprintln!("noxious-peer: cannot listen on {listen}: {e}");
                    std::process::exit(1);
                });
        let (sender, receiver) = bmrng::channel(1);
        senders.push(sender);
        let (_close, closer) = Close::new();
        running.push(tokio::spawn(ProxyRunner::run_proxy(
            listener,
            info,
            receiver,
            stop.clone(),
            closer,
        )));
    }
    println!("ready");
    for r in running {
        let _ = r.await;
    }
}
