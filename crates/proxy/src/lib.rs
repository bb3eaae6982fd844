//! Latency Monkey's data plane: TCP proxies whose connections pass through toxics.
//!
//! A [`Registry`] holds named proxies; each listens on its own socket and, for every client,
//! dials the upstream and runs two links (client to server, server to client) through the
//! toxics of that direction ([`toxic`]). The toxic kinds, attributes and behaviour are
//! Toxiproxy's, so its clients work unchanged; the wire format itself lives in
//! `simian-server`: this crate never sees HTTP or JSON.
//!
//! What it does better than the original: the control plane never waits for a link (toxic
//! changes are published on `watch` channels), the upstream dial happens off the accept path
//! with a timeout, values that crash the original are refused, and `-seed` really makes the
//! randomness reproducible.
//!
//! A direction without toxics forwards bytes straight from socket to socket: by one copy
//! through a per-thread buffer, or by splice(2) while it streams bulk data; an opt-in
//! busy-poll window after each transfer lets request/response traffic find the proxy awake.
//! A direction whose toxics only delay releases every chunk that is due in one write.
//! On connections that stay on loopback, the proxy's own sockets use a congestion control
//! that does not pace ([`LoopbackCongestion`]).
//!
//! ```no_run
//! # async fn demo() {
//! use simian_proxy::{NewProxy, NewToxic, Registry, RegistryConfig};
//!
//! let registry = Registry::new(RegistryConfig::default());
//! let p = registry.create(NewProxy {
//!     name: "redis".into(),
//!     listen: "127.0.0.1:26379".into(),
//!     upstream: "127.0.0.1:6379".into(),
//!     enabled: true,
//! }).unwrap();
//! registry.add_toxic(&p.name, NewToxic {
//!     name: None,
//!     type_name: "latency".into(),
//!     stream: None,
//!     toxicity: None,
//!     attributes: vec![("latency".into(), 100)],
//! }).unwrap();
//! # }
//! ```

mod congestion;
pub mod link;
pub mod registry;
mod splice;
mod timer;
pub mod toxic;

pub use congestion::{CongestionError, LoopbackCongestion};
pub use registry::{
    DEFAULT_BUSY_POLL, NewProxy, NewToxic, ProxyCounters, ProxyError, ProxyUpdate, ProxyView,
    Registry, RegistryConfig, resolve_listen,
};
pub use toxic::{Kind, Stream, TYPES, Toxic};
