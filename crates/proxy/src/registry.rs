//! The proxies and their toxics: the control side of the data plane.
//!
//! Every operation takes the registry lock only briefly and never across an `.await`: a
//! toxic change publishes a new immutable chain on the direction's `watch` channel and
//! returns; links pick it up on their own. So the API answers at once however busy, slow or
//! stuck the links are (Toxiproxy holds one global lock while every link acknowledges, the
//! cause of its API hangs).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::congestion::LoopbackCongestion;
use crate::link::{Chain, ConnectionPlan, Counters};
use crate::toxic::{Kind, Stream, Toxic};

/// Why an operation failed; the texts are Toxiproxy's, which clients compare.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// No such proxy.
    #[error("proxy not found")]
    NotFound,
    /// Name taken.
    #[error("proxy already exists")]
    AlreadyExists,
    /// Missing name on create.
    #[error("missing required field: name")]
    MissingName,
    /// Missing upstream on create.
    #[error("missing required field: upstream")]
    MissingUpstream,
    /// A name no request path could address.
    #[error("proxy name {0:?} cannot contain '/': it could never be addressed as /proxies/NAME")]
    UnaddressableName(String),
    /// No such toxic.
    #[error("toxic not found")]
    ToxicNotFound,
    /// Toxic name taken (in either stream).
    #[error("toxic already exists")]
    ToxicExists,
    /// Bad stream.
    #[error("stream was invalid, can be either upstream or downstream")]
    InvalidStream,
    /// Unknown toxic type.
    #[error("invalid toxic type")]
    InvalidType,
    /// An attribute value that would hang or crash a link.
    #[error("{0}")]
    InvalidAttribute(String),
    /// The listener could not be bound (Go's wording).
    #[error("{0}")]
    Bind(String),
}

impl ProxyError {
    /// The HTTP status Toxiproxy answers with.
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::NotFound | ProxyError::ToxicNotFound => 404,
            ProxyError::AlreadyExists | ProxyError::ToxicExists => 409,
            ProxyError::Bind(_) => 500,
            _ => 400,
        }
    }
}

/// A proxy as the API shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyView {
    /// Name.
    pub name: String,
    /// The bound address once started, else the configured listen string.
    pub listen: String,
    /// Upstream, verbatim.
    pub upstream: String,
    /// Listening.
    pub enabled: bool,
    /// Upstream toxics in insertion order, then downstream ones.
    pub toxics: Vec<Toxic>,
}

/// A proxy to create (the API's body, decoded).
#[derive(Clone, Debug, Default)]
pub struct NewProxy {
    /// Name.
    pub name: String,
    /// Listen address; empty binds every interface on a free port.
    pub listen: String,
    /// Upstream `host:port`.
    pub upstream: String,
    /// Start listening now (default true).
    pub enabled: bool,
}

impl NewProxy {
    /// What every way of creating a proxy requires: a name that a request path can address,
    /// and an upstream.
    pub fn check(&self) -> Result<(), ProxyError> {
        if self.name.is_empty() {
            return Err(ProxyError::MissingName);
        }
        if self.name.contains('/') {
            return Err(ProxyError::UnaddressableName(self.name.clone()));
        }
        if self.upstream.is_empty() {
            return Err(ProxyError::MissingUpstream);
        }
        Ok(())
    }
}

/// A proxy update: absent fields keep their value.
#[derive(Clone, Debug, Default)]
pub struct ProxyUpdate {
    /// New listen address.
    pub listen: Option<String>,
    /// New upstream.
    pub upstream: Option<String>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// A toxic to add.
#[derive(Clone, Debug)]
pub struct NewToxic {
    /// Name; default `<type>_<stream as given>`.
    pub name: Option<String>,
    /// Type name.
    pub type_name: String,
    /// Stream as given; default `downstream`.
    pub stream: Option<String>,
    /// Default 1.
    pub toxicity: Option<f32>,
    /// Attribute values given (others 0).
    pub attributes: Vec<(String, i64)>,
}

/// Live byte counts of one proxy, for metrics.
#[derive(Clone, Debug)]
pub struct ProxyCounters {
    /// Name.
    pub name: String,
    /// Listen address as shown.
    pub listen: String,
    /// Upstream.
    pub upstream: String,
    /// Upstream direction counters.
    pub upstream_bytes: (u64, u64),
    /// Downstream direction counters.
    pub downstream_bytes: (u64, u64),
}

struct Entry {
    name: String,
    /// Configured listen, or the bound address once the proxy has listened.
    listen: String,
    upstream: String,
    running: Option<CancellationToken>,
    /// A duplicate of the listening socket, so stopping refuses new clients at once rather
    /// than when the accept task next runs.
    listening: Option<std::net::TcpListener>,
    toxics: Vec<Toxic>,
    chains: [watch::Sender<Chain>; 2],
    counters: [Arc<Counters>; 2],
}

impl Entry {
    fn view(&self) -> ProxyView {
        let mut toxics: Vec<Toxic> = self
            .toxics
            .iter()
            .filter(|t| t.stream == Stream::Upstream)
            .cloned()
            .collect();
        toxics.extend(
            self.toxics
                .iter()
                .filter(|t| t.stream == Stream::Downstream)
                .cloned(),
        );
        ProxyView {
            name: self.name.clone(),
            listen: self.listen.clone(),
            upstream: self.upstream.clone(),
            enabled: self.running.is_some(),
            toxics,
        }
    }

    fn publish(&self) {
        for (i, stream) in [Stream::Upstream, Stream::Downstream]
            .into_iter()
            .enumerate()
        {
            let chain: Vec<Toxic> = self
                .toxics
                .iter()
                .filter(|t| t.stream == stream)
                .cloned()
                .collect();
            self.chains[i].send_replace(Arc::from(chain));
        }
    }

    /// Stops the accept task but keeps the listening socket open, for a restart on the same
    /// address that can never fail to bind it again.
    fn pause_accepting(&mut self) -> Option<(std::net::TcpListener, SocketAddr)> {
        let token = self.running.take()?;
        token.cancel();
        let listener = self.listening.take()?;
        let addr = listener.local_addr().ok()?;
        Some((listener, addr))
    }

    fn stop(&mut self) {
        // Cancel first, so that the accept task knows the error the shutdown below makes it
        // see is the stop itself, and never warns about it.
        if let Some(token) = self.running.take() {
            token.cancel();
        }
        if let Some(listener) = self.listening.take() {
            // Shutting a listening socket down closes it for new connections now (they are
            // refused), even before the accept task sees the cancellation and drops it.
            let _ = rustix::net::shutdown(&listener, rustix::net::Shutdown::Both);
        }
    }
}

/// Settings of the data plane.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Seed for toxicity, jitter and slicer randomness; random when `None`.
    pub seed: Option<u64>,
    /// How long to wait for the upstream when a client connects.
    pub dial_timeout: Duration,
    /// How long a link without toxics keeps polling for its next bytes before it sleeps.
    /// Spinning through the gap of a request/response exchange saves the wake-up that
    /// otherwise dominates the time a proxy adds; zero never spins.
    pub busy_poll: Duration,
    /// Congestion control of the proxy's sockets on connections that stay on this machine
    /// (`congestion.rs` says why); the server resolves its default with
    /// [`LoopbackCongestion::resolve`], a bare registry keeps the system's.
    pub loopback_congestion: LoopbackCongestion,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            seed: None,
            dial_timeout: Duration::from_secs(10),
            busy_poll: DEFAULT_BUSY_POLL,
            loopback_congestion: LoopbackCongestion::System,
        }
    }
}

/// The default [`RegistryConfig::busy_poll`]: none. A fault-injection proxy runs on
/// developers' machines and CI runners beside the programs it tests, and a poll window keeps
/// a core busy for as long as any connection talks (97% of one on a 2-core runner, against
/// 46% without; issue 18). `--busy-poll-us` turns it on for latency benchmarks; 50 µs is the
/// window Linux suggests for its own socket busy polling (`net.core.busy_poll`).
pub const DEFAULT_BUSY_POLL: Duration = Duration::ZERO;

/// Every proxy of a server.
pub struct Registry {
    proxies: Mutex<BTreeMap<String, Entry>>,
    /// The data-plane runtime: listeners and connections run here, whichever runtime the
    /// control calls come from.
    runtime: tokio::runtime::Handle,
    config: RegistryConfig,
    seed: u64,
    connections: Arc<AtomicU64>,
    next_version: AtomicU64,
}

/// Resolves a listen string as Go's `net.Listen("tcp", ...)` would, with Go's error texts.
pub fn resolve_listen(listen: &str) -> Result<SocketAddr, String> {
    if listen.is_empty() {
        return Ok(SocketAddr::from(([0u16; 8], 0)));
    }
    let Some((host, port)) = listen.rsplit_once(':') else {
        return Err(format!(
            "listen tcp: address {listen}: missing port in address"
        ));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(port) = port.parse::<u16>() else {
        return Err(format!("listen tcp: address {listen}: invalid port"));
    };
    if host.is_empty() {
        return Ok(SocketAddr::from(([0u16; 8], port)));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|_| format!("listen tcp: lookup {host}: no such host"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("listen tcp: lookup {host}: no such host"))
}

/// When two listen strings name the same address (resolved, as Go compares them), the port
/// they share; strings that do not resolve match only as written, with port 0 ("unknown").
fn same_listen(a: &str, b: &str) -> Option<u16> {
    match (resolve_listen(a), resolve_listen(b)) {
        (Ok(x), Ok(y)) => (x == y).then_some(x.port()),
        _ => (a == b).then_some(0),
    }
}

fn bind(listen: &str) -> Result<(std::net::TcpListener, SocketAddr), String> {
    let addr = resolve_listen(listen)?;
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        let what = match e.kind() {
            std::io::ErrorKind::AddrInUse => "address already in use".to_string(),
            std::io::ErrorKind::AddrNotAvailable => "cannot assign requested address".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        format!("listen tcp {addr}: bind: {what}")
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("listen tcp {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("listen tcp {addr}: {e}"))?;
    Ok((listener, bound))
}

fn show(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() && addr.is_ipv6() {
        format!("[::]:{}", addr.port())
    } else {
        addr.to_string()
    }
}

impl Registry {
    /// An empty registry whose proxies run on the current Tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime; use [`Registry::with_runtime`] there.
    pub fn new(config: RegistryConfig) -> Registry {
        Registry::with_runtime(config, tokio::runtime::Handle::current())
    }

    /// An empty registry whose proxies run on `runtime`.
    pub fn with_runtime(config: RegistryConfig, runtime: tokio::runtime::Handle) -> Registry {
        let seed = config.seed.unwrap_or_else(rand::random);
        Registry {
            proxies: Mutex::new(BTreeMap::new()),
            runtime,
            config,
            seed,
            connections: Arc::new(AtomicU64::new(0)),
            next_version: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.proxies.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `entry`'s listener on its listen address.
    fn start(&self, entry: &mut Entry) -> Result<(), ProxyError> {
        self.start_with(entry, None)
    }

    /// Starts accepting on `prebound` if given (a socket already bound), else on a socket
    /// bound to the entry's `listen` now.
    fn start_with(
        &self,
        entry: &mut Entry,
        prebound: Option<(std::net::TcpListener, SocketAddr)>,
    ) -> Result<(), ProxyError> {
        if entry.running.is_some() {
            return Ok(());
        }
        let (std_listener, bound) = match prebound {
            Some(bound) => bound,
            None => bind(&entry.listen).map_err(ProxyError::Bind)?,
        };
        let listening = std_listener
            .try_clone()
            .map_err(|e| ProxyError::Bind(e.to_string()))?;
        // The listener belongs to the data plane, whichever runtime this call comes from.
        let _data_plane = self.runtime.enter();
        let listener =
            TcpListener::from_std(std_listener).map_err(|e| ProxyError::Bind(e.to_string()))?;
        entry.listen = show(bound);
        let token = CancellationToken::new();
        entry.running = Some(token.clone());
        entry.listening = Some(listening);
        let chains = [entry.chains[0].subscribe(), entry.chains[1].subscribe()];
        let counters = entry.counters.clone();
        let upstream = entry.upstream.clone();
        let (seed, dial_timeout, busy_poll, congestion, connections) = (
            self.seed,
            self.config.dial_timeout,
            self.config.busy_poll,
            self.config.loopback_congestion.clone(),
            self.connections.clone(),
        );
        self.runtime.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    biased;
                    _ = token.cancelled() => break,
                    a = listener.accept() => a,
                };
                match accepted {
                    Ok((client, _)) => {
                        let n = connections.fetch_add(1, Ordering::Relaxed);
                        let plan = ConnectionPlan {
                            upstream: upstream.clone(),
                            chains: [chains[0].clone(), chains[1].clone()],
                            counters: counters.clone(),
                            dial_timeout,
                            busy_poll,
                            congestion: congestion.clone(),
                            seed: seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                        };
                        // The dial happens in the connection's own task: a slow upstream
                        // never delays accepting other clients.
                        tokio::spawn(crate::link::serve(client, plan, token.child_token()));
                    }
                    // The stop shut the socket: not a failure.
                    Err(_) if token.is_cancelled() => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
        Ok(())
    }

    fn new_entry(p: &NewProxy) -> Entry {
        let empty: Chain = Arc::from(Vec::new());
        Entry {
            name: p.name.clone(),
            listen: p.listen.clone(),
            upstream: p.upstream.clone(),
            running: None,
            listening: None,
            toxics: Vec::new(),
            chains: [watch::channel(empty.clone()).0, watch::channel(empty).0],
            counters: [Arc::default(), Arc::default()],
        }
    }

    /// Creates a proxy (and starts it when enabled). A bind failure registers nothing.
    pub fn create(&self, p: NewProxy) -> Result<ProxyView, ProxyError> {
        p.check()?;
        let mut proxies = self.lock();
        if proxies.contains_key(&p.name) {
            return Err(ProxyError::AlreadyExists);
        }
        let mut entry = Self::new_entry(&p);
        if p.enabled {
            self.start(&mut entry)?;
        }
        let view = entry.view();
        proxies.insert(p.name, entry);
        Ok(view)
    }

    /// Every proxy, sorted by name.
    pub fn list(&self) -> Vec<ProxyView> {
        self.lock().values().map(Entry::view).collect()
    }

    /// One proxy.
    pub fn get(&self, name: &str) -> Result<ProxyView, ProxyError> {
        self.lock()
            .get(name)
            .map(Entry::view)
            .ok_or(ProxyError::NotFound)
    }

    /// Updates listen, upstream or enabled. A change of address restarts the proxy (live
    /// connections are closed); toxics are kept. A change that cannot be made (the new
    /// address is taken) leaves the proxy exactly as it was, still listening where it did:
    /// the new address is bound before the old one is let go.
    pub fn update(&self, name: &str, u: ProxyUpdate) -> Result<ProxyView, ProxyError> {
        let mut proxies = self.lock();
        let entry = proxies.get_mut(name).ok_or(ProxyError::NotFound)?;
        let running = entry.running.is_some();
        let enabled = u.enabled.unwrap_or(running);
        let new_listen = u.listen.unwrap_or_else(|| entry.listen.clone());
        let new_upstream = u.upstream.unwrap_or_else(|| entry.upstream.clone());
        let moves = same_listen(&new_listen, &entry.listen).is_none();
        let changed = moves || new_upstream != entry.upstream;
        let prebound = if enabled && moves {
            Some(bind(&new_listen).map_err(ProxyError::Bind)?)
        } else if enabled && changed && running {
            entry.pause_accepting()
        } else {
            None
        };
        if changed {
            entry.stop();
            entry.listen = new_listen;
            entry.upstream = new_upstream;
        }
        if enabled {
            self.start_with(entry, prebound)?;
        } else {
            entry.stop();
        }
        Ok(entry.view())
    }

    /// Stops and removes a proxy.
    pub fn delete(&self, name: &str) -> Result<(), ProxyError> {
        let mut entry = self.lock().remove(name).ok_or(ProxyError::NotFound)?;
        entry.stop();
        Ok(())
    }

    /// Creates, replaces or keeps each proxy, in order (see docs/proxy.md). Returns the
    /// proxies processed and, on the first failure, the error. Every entry is checked
    /// ([`NewProxy::check`]) before any proxy is touched.
    pub fn populate(&self, list: Vec<NewProxy>) -> (Vec<ProxyView>, Option<ProxyError>) {
        if let Some(e) = list.iter().find_map(|p| p.check().err()) {
            return (Vec::new(), Some(e));
        }
        let mut done = Vec::new();
        for p in list {
            let mut proxies = self.lock();
            let same = proxies.get(&p.name).is_some_and(|e| {
                // A `:0` listen never equals a bound port, so it always replaces.
                e.upstream == p.upstream
                    && same_listen(&p.listen, &e.listen).is_some_and(|port| port != 0)
            });
            if same {
                if let Some(e) = proxies.get(&p.name) {
                    done.push(e.view());
                }
                continue;
            }
            if let Some(old) = proxies.get_mut(&p.name) {
                old.stop();
            }
            let mut entry = Self::new_entry(&p);
            if p.enabled
                && let Err(e) = self.start(&mut entry)
            {
                return (done, Some(e));
            }
            done.push(entry.view());
            proxies.insert(p.name.clone(), entry);
        }
        (done, None)
    }

    /// Removes every toxic and enables every proxy; a proxy that cannot listen again does not
    /// stop the others, and the error names each such proxy. Proxies are kept.
    pub fn reset(&self) -> Result<(), ProxyError> {
        let mut proxies = self.lock();
        let mut failed = Vec::new();
        for (name, entry) in proxies.iter_mut() {
            entry.toxics.clear();
            entry.publish();
            if let Err(e) = self.start(entry) {
                failed.push(format!("{name} ({e})"));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(ProxyError::Bind(format!(
                "every proxy was reset, but {} could not be enabled again: {}",
                failed.len(),
                failed.join(", ")
            )))
        }
    }

    /// The toxics of a proxy (upstream first).
    pub fn toxics(&self, proxy: &str) -> Result<Vec<Toxic>, ProxyError> {
        self.get(proxy).map(|p| p.toxics)
    }

    /// One toxic.
    pub fn toxic(&self, proxy: &str, name: &str) -> Result<Toxic, ProxyError> {
        self.toxics(proxy)?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or(ProxyError::ToxicNotFound)
    }

    /// Adds a toxic at the end of its direction's chain, on every live connection too.
    pub fn add_toxic(&self, proxy: &str, t: NewToxic) -> Result<Toxic, ProxyError> {
        let mut proxies = self.lock();
        let entry = proxies.get_mut(proxy).ok_or(ProxyError::NotFound)?;
        let stream_text = t.stream.unwrap_or_else(|| "downstream".to_string());
        let stream = Stream::parse(&stream_text).ok_or(ProxyError::InvalidStream)?;
        let name = t
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{}_{}", t.type_name, stream_text));
        let mut kind = Kind::zeroed(&t.type_name).ok_or(ProxyError::InvalidType)?;
        if entry.toxics.iter().any(|x| x.name == name) {
            return Err(ProxyError::ToxicExists);
        }
        for (key, value) in &t.attributes {
            kind.set(key, *value);
        }
        kind.validate().map_err(ProxyError::InvalidAttribute)?;
        let toxic = Toxic {
            name,
            kind,
            stream,
            stream_text,
            toxicity: t.toxicity.unwrap_or(1.0),
            version: self.next_version.fetch_add(1, Ordering::Relaxed),
        };
        entry.toxics.push(toxic.clone());
        entry.publish();
        Ok(toxic)
    }

    /// Merges attributes and toxicity into a toxic; every live link restarts its stage.
    pub fn update_toxic(
        &self,
        proxy: &str,
        name: &str,
        attributes: Vec<(String, i64)>,
        toxicity: Option<f32>,
    ) -> Result<Toxic, ProxyError> {
        let mut proxies = self.lock();
        let entry = proxies.get_mut(proxy).ok_or(ProxyError::NotFound)?;
        let toxic = entry
            .toxics
            .iter_mut()
            .find(|t| t.name == name)
            .ok_or(ProxyError::ToxicNotFound)?;
        let mut kind = toxic.kind.clone();
        for (key, value) in &attributes {
            kind.set(key, *value);
        }
        kind.validate().map_err(ProxyError::InvalidAttribute)?;
        toxic.kind = kind;
        if let Some(t) = toxicity {
            toxic.toxicity = t;
        }
        toxic.version = self.next_version.fetch_add(1, Ordering::Relaxed);
        let updated = toxic.clone();
        entry.publish();
        Ok(updated)
    }

    /// Removes a toxic from the proxy and from every live connection.
    pub fn remove_toxic(&self, proxy: &str, name: &str) -> Result<(), ProxyError> {
        let mut proxies = self.lock();
        let entry = proxies.get_mut(proxy).ok_or(ProxyError::NotFound)?;
        let before = entry.toxics.len();
        entry.toxics.retain(|t| t.name != name);
        if entry.toxics.len() == before {
            return Err(ProxyError::ToxicNotFound);
        }
        entry.publish();
        Ok(())
    }

    /// Live byte counters of every proxy.
    pub fn counters(&self) -> Vec<ProxyCounters> {
        self.lock()
            .values()
            .map(|e| {
                let read = |c: &Counters| {
                    (
                        c.received.load(Ordering::Relaxed),
                        c.sent.load(Ordering::Relaxed),
                    )
                };
                ProxyCounters {
                    name: e.name.clone(),
                    listen: e.listen.clone(),
                    upstream: e.upstream.clone(),
                    upstream_bytes: read(&e.counters[0]),
                    downstream_bytes: read(&e.counters[1]),
                }
            })
            .collect()
    }

    /// Stops every proxy (server shutdown).
    pub fn shutdown(&self) {
        for entry in self.lock().values_mut() {
            entry.stop();
        }
    }
}
