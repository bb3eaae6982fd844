//! `simian proxy`: the Toxiproxy-compatible server, and a client for people.
//!
//! The server is `simian_server::toxiproxy::serve` over a `simian_proxy::Registry`, the same
//! functions the tests start. Started under the name `toxiproxy-server`, the binary accepts
//! that server's own flags (see [`toxiproxy_server_main`]).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use simian_proxy::{LoopbackCongestion, Registry, RegistryConfig};
use simian_server::toxiproxy::{self, Api, ApiOptions};

use crate::args::{Global, ProxyArgs, ProxyCommand, ToxicCommand};
use crate::output::table;

/// What the server needs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Bind host.
    pub host: String,
    /// Bind port.
    pub port: u16,
    /// A JSON array of proxies to create at start.
    pub config: Option<std::path::PathBuf>,
    /// Randomness seed.
    pub seed: Option<u64>,
    /// `/metrics` options.
    pub api: ApiOptions,
    /// Data-plane threads.
    pub workers: usize,
    /// How long an idle pass-through link keeps polling before it sleeps.
    pub busy_poll: Duration,
    /// Congestion control asked for loopback connections; `None` for the default.
    pub loopback_congestion: Option<String>,
}

impl ServerOptions {
    /// The defaults of both spellings of the server (`simian proxy`, `toxiproxy-server`).
    fn new(host: String, port: u16) -> ServerOptions {
        ServerOptions {
            host,
            port,
            config: None,
            seed: None,
            api: ApiOptions::default(),
            workers: default_workers(),
            busy_poll: simian_proxy::DEFAULT_BUSY_POLL,
            loopback_congestion: None,
        }
    }
}

/// Half the cores, at least one: the proxy shares the machine with the clients and servers it
/// sits between, and a thread per core would compete with them for every byte.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

pub fn run(g: &Global, a: ProxyArgs) -> anyhow::Result<u8> {
    match a.command {
        None => {
            let mut o = ServerOptions::new(
                a.host.unwrap_or_else(|| "localhost".into()),
                a.port.unwrap_or(8474),
            );
            o.config = g.config.clone();
            o.seed = a.seed;
            o.api = ApiOptions {
                proxy_metrics: a.proxy_metrics,
                runtime_metrics: a.runtime_metrics,
            };
            if let Some(n) = a.workers {
                o.workers = n.into();
            }
            if let Some(us) = a.busy_poll_us {
                o.busy_poll = Duration::from_micros(us.into());
            }
            o.loopback_congestion = a.loopback_congestion;
            serve(o)
        }
        Some(command) => {
            let client = Client::new(a.host.as_deref(), a.port)?;
            client.run(command, g.json)
        }
    }
}

/// Runs the server until SIGINT or SIGTERM.
///
/// The data plane (listeners, connections, toxics) runs on its own multi-threaded runtime;
/// the control API on a separate single-threaded one, so a saturated data plane never delays
/// an API answer and a slow API client never stalls bytes.
pub fn serve(o: ServerOptions) -> anyhow::Result<u8> {
    let loopback_congestion = LoopbackCongestion::resolve(o.loopback_congestion.as_deref())
        .map_err(|e| super::UsageError(format!("--loopback-congestion: {e}")))?;
    let data_plane = DataPlane::start(o.workers)?;
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let registry = Arc::new(Registry::with_runtime(
        RegistryConfig {
            seed: o.seed,
            busy_poll: o.busy_poll,
            loopback_congestion: loopback_congestion.clone(),
            ..RegistryConfig::default()
        },
        data_plane.handle.clone(),
    ));
    if let Some(path) = &o.config {
        populate_from_file(&registry, path)?;
    }
    let code = control.block_on(async move {
        let addr = format!("{}:{}", o.host, o.port);
        let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding the API to {addr}"))?;
        tracing::info!(address = %listener.local_addr()?, version = toxiproxy::wire::VERSION, %loopback_congestion, "API listening");
        let api = Api::new(registry, o.api);
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        };
        toxiproxy::serve(listener, api, shutdown).await;
        anyhow::Ok(super::OK)
    })?;
    data_plane.stop();
    Ok(code)
}

/// The runtime that moves bytes.
///
/// One worker (the default on two cores) is a current-thread runtime on a thread of its own:
/// between a socket's wake-up and its bytes there is then no work-stealing machinery, which
/// on request/response traffic is a measurable share of what the proxy adds (BENCHMARKS.md).
/// More workers are tokio's multi-threaded runtime.
struct DataPlane {
    handle: tokio::runtime::Handle,
    kind: DataPlaneKind,
}

enum DataPlaneKind {
    Single {
        stop: tokio::sync::oneshot::Sender<()>,
        thread: std::thread::JoinHandle<()>,
    },
    Multi(tokio::runtime::Runtime),
}

impl DataPlane {
    fn start(workers: usize) -> anyhow::Result<DataPlane> {
        if workers > 1 {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .thread_name("proxy-data")
                .enable_all()
                .build()?;
            return Ok(DataPlane {
                handle: runtime.handle().clone(),
                kind: DataPlaneKind::Multi(runtime),
            });
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("proxy-data".into())
            .spawn(move || {
                let _ = runtime.block_on(stopped);
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(DataPlane {
            handle,
            kind: DataPlaneKind::Single { stop, thread },
        })
    }

    /// Stops every listener and connection, waiting at most a second for them.
    fn stop(self) {
        match self.kind {
            DataPlaneKind::Single { stop, thread } => {
                let _ = stop.send(());
                let _ = thread.join();
            }
            DataPlaneKind::Multi(runtime) => runtime.shutdown_timeout(Duration::from_secs(1)),
        }
    }
}

/// Applies a `/populate`-format file at start, through the same checks as `POST /populate`.
/// A file that cannot be read, parsed or checked, or a proxy that cannot start, stops the
/// server before it serves anything: the error names the file, the proxy and the reason.
fn populate_from_file(registry: &Registry, path: &std::path::Path) -> anyhow::Result<()> {
    let bad = |reason: String| super::UsageError(format!("{}: {reason}", path.display()));
    let bytes =
        std::fs::read(path).map_err(|e| bad(format!("cannot read the proxy config: {e}")))?;
    let value = toxiproxy::body::parse(&bytes).map_err(bad)?;
    let list = toxiproxy::body::new_proxies(&value).map_err(bad)?;
    let (done, failure) = registry.populate(list);
    if let Some(e) = failure {
        let at = done.len() + 1;
        anyhow::bail!("{}: proxy {at} could not start: {e}", path.display());
    }
    tracing::info!(config = %path.display(), proxies = done.len(), "populated proxies from config");
    Ok(())
}

/// The binary started as `toxiproxy-server`: Go-style flags (`-port 8474`, `-port=8474`,
/// `--port 8474`), as existing scripts and container setups pass them.
pub fn toxiproxy_server_main(args: &[String]) -> anyhow::Result<u8> {
    let mut o = ServerOptions::new("localhost".into(), 8474);
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].trim_start_matches('-');
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg, None),
        };
        let mut value = || -> anyhow::Result<String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            i += 1;
            args.get(i)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("flag needs an argument: -{name}"))
        };
        match name {
            "host" => o.host = value()?,
            "port" => o.port = value()?.parse().context("-port")?,
            "config" => o.config = Some(value()?.into()),
            "seed" => o.seed = Some(value()?.parse().context("-seed")?),
            "proxy-metrics" => o.api.proxy_metrics = inline.as_deref().is_none_or(|v| v == "true"),
            "runtime-metrics" => {
                o.api.runtime_metrics = inline.as_deref().is_none_or(|v| v == "true")
            }
            "version" => {
                outln!("toxiproxy-server version {}", toxiproxy::wire::VERSION)?;
                return Ok(super::OK);
            }
            "h" | "help" => {
                outln!(
                    "Usage of toxiproxy-server:\n  -config string\n  -host string (default \"localhost\")\n  -port string (default \"8474\")\n  -proxy-metrics\n  -runtime-metrics\n  -seed int\n  -version"
                )?;
                return Ok(super::OK);
            }
            other => {
                return Err(
                    super::UsageError(format!("flag provided but not defined: -{other}")).into(),
                );
            }
        }
        i += 1;
    }
    serve(o)
}

/// A client of a running server.
struct Client {
    base: String,
    agent: ureq::Agent,
}

fn attribute_pairs(list: &[String]) -> anyhow::Result<serde_json::Map<String, Value>> {
    let mut out = serde_json::Map::new();
    for a in list {
        let Some((k, v)) = a.split_once('=') else {
            return Err(super::UsageError(format!(
                "attribute {a:?} is not KEY=VALUE (for example latency=100)"
            ))
            .into());
        };
        let value = v
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| v.parse::<f64>().map(Value::from).unwrap_or(Value::from(v)));
        out.insert(k.to_string(), value);
    }
    Ok(out)
}

impl Client {
    fn new(host: Option<&str>, port: Option<u16>) -> anyhow::Result<Client> {
        let base = match (
            host,
            std::env::var("TOXIPROXY_URL")
                .ok()
                .filter(|u| !u.is_empty()),
        ) {
            (Some(h), _) if h.contains("://") => h.trim_end_matches('/').to_string(),
            (Some(h), _) => format!("http://{h}:{}", port.unwrap_or(8474)),
            (None, Some(url)) => url.trim_end_matches('/').to_string(),
            (None, None) => format!("http://localhost:{}", port.unwrap_or(8474)),
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .user_agent(concat!("simian/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Client { base, agent })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Option<Value>> {
        let url = format!("{}{path}", self.base);
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            ("PATCH", b) => self
                .agent
                .patch(&url)
                .header("content-type", "application/json")
                .send(b.unwrap_or(Value::Null).to_string()),
            (_, b) => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(b.unwrap_or(Value::Null).to_string()),
        };
        let mut response = response.with_context(|| format!("cannot reach the proxy server at {}: is `simian proxy` running? (--host or TOXIPROXY_URL)", self.base))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().with_context(|| {
            format!(
                "the proxy server at {} answered HTTP {status} with a body that cannot be read",
                self.base
            )
        })?;
        if status >= 400 {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| text.trim().to_string());
            bail!("HTTP {status}: {message}");
        }
        if text.trim().is_empty() {
            return Ok(None);
        }
        match serde_json::from_str(&text) {
            Ok(v) => Ok(Some(v)),
            Err(e) => bail!(
                "the proxy server at {} answered HTTP {status} with something that is not JSON ({e}): {:?}: is it a Toxiproxy-compatible server?",
                self.base,
                text.chars().take(200).collect::<String>()
            ),
        }
    }

    /// The answer of `path`, which must be a JSON object (what Toxiproxy answers there).
    fn object(&self, path: &str) -> anyhow::Result<Value> {
        let v = self.call("GET", path, None)?.unwrap_or(Value::Null);
        if !v.is_object() {
            bail!(
                "the proxy server at {} answered {path} with {}, not a JSON object: is it a Toxiproxy-compatible server?",
                self.base,
                v.to_string().chars().take(200).collect::<String>()
            );
        }
        Ok(v)
    }

    fn run(&self, command: ProxyCommand, json: bool) -> anyhow::Result<u8> {
        match command {
            ProxyCommand::List => {
                let all = self.object("/proxies")?;
                if json {
                    super::print_json(&all)?;
                    return Ok(super::OK);
                }
                let rows: Vec<Vec<String>> = all
                    .as_object()
                    .map(|m| {
                        m.values()
                            .map(|p| {
                                vec![
                                    p["name"].as_str().unwrap_or_default().to_string(),
                                    p["listen"].as_str().unwrap_or_default().to_string(),
                                    p["upstream"].as_str().unwrap_or_default().to_string(),
                                    if p["enabled"].as_bool() == Some(true) {
                                        "enabled".into()
                                    } else {
                                        "disabled".into()
                                    },
                                    p["toxics"].as_array().map_or(0, Vec::len).to_string(),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out!(
                    "{}",
                    table(&["NAME", "LISTEN", "UPSTREAM", "ENABLED", "TOXICS"], &rows)
                )?;
                if rows.is_empty() && std::io::stdout().is_terminal() {
                    outln!(
                        "no proxies: create one with `simian proxy create NAME --listen HOST:PORT --upstream HOST:PORT`"
                    )?;
                }
            }
            ProxyCommand::Inspect { proxy } => {
                let p = self
                    .object(&format!("/proxies/{proxy}"))
                    .with_context(|| format!("failed to retrieve proxy {proxy}"))?;
                if json {
                    super::print_json(&p)?;
                    return Ok(super::OK);
                }
                outln!(
                    "{}  {} -> {}  ({})",
                    p["name"].as_str().unwrap_or_default(),
                    p["listen"].as_str().unwrap_or_default(),
                    p["upstream"].as_str().unwrap_or_default(),
                    if p["enabled"].as_bool() == Some(true) {
                        "enabled"
                    } else {
                        "disabled"
                    }
                )?;
                let rows: Vec<Vec<String>> = p["toxics"]
                    .as_array()
                    .map(|ts| {
                        ts.iter()
                            .map(|t| {
                                let mut attrs: Vec<String> = t["attributes"]
                                    .as_object()
                                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                                    .unwrap_or_default();
                                attrs.sort();
                                vec![
                                    t["name"].as_str().unwrap_or_default().to_string(),
                                    t["type"].as_str().unwrap_or_default().to_string(),
                                    t["stream"].as_str().unwrap_or_default().to_string(),
                                    format!("{:.2}", t["toxicity"].as_f64().unwrap_or(1.0)),
                                    attrs.join(" "),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out!(
                    "{}",
                    table(
                        &["TOXIC", "TYPE", "STREAM", "TOXICITY", "ATTRIBUTES"],
                        &rows
                    )
                )?;
            }
            ProxyCommand::Create {
                proxy,
                listen,
                upstream,
            } => {
                let body =
                    serde_json::json!({"name": proxy, "listen": listen, "upstream": upstream});
                let created = self
                    .call("POST", "/proxies", Some(body))
                    .context("failed to create proxy")?;
                if json {
                    super::print_json(&created)?;
                } else {
                    outln!("Created new proxy {proxy}")?;
                }
            }
            ProxyCommand::Toggle { proxy } => {
                let p = self
                    .object(&format!("/proxies/{proxy}"))
                    .with_context(|| format!("failed to retrieve proxy {proxy}"))?;
                let enable = p["enabled"].as_bool() != Some(true);
                self.call(
                    "POST",
                    &format!("/proxies/{proxy}"),
                    Some(serde_json::json!({"enabled": enable})),
                )
                .context("failed to toggle proxy")?;
                outln!(
                    "Proxy {proxy} is now {}",
                    if enable { "enabled" } else { "disabled" }
                )?;
            }
            ProxyCommand::Delete { proxy } => {
                self.call("DELETE", &format!("/proxies/{proxy}"), None)
                    .context("failed to delete proxy")?;
                outln!("Deleted proxy {proxy}")?;
            }
            ProxyCommand::Toxic(ToxicCommand::Add {
                proxy,
                toxic_type,
                name,
                toxicity,
                attributes,
                upstream,
                ..
            }) => {
                let stream = if upstream { "upstream" } else { "downstream" };
                let mut body = serde_json::json!({"type": toxic_type, "stream": stream, "attributes": attribute_pairs(&attributes)?});
                if let Some(n) = &name {
                    body["name"] = Value::from(n.as_str());
                }
                if let Some(t) = toxicity {
                    body["toxicity"] = Value::from(t);
                }
                let t = self
                    .call("POST", &format!("/proxies/{proxy}/toxics"), Some(body))
                    .context("failed to add toxic")?
                    .unwrap_or(Value::Null);
                outln!(
                    "Added {stream} {toxic_type} toxic '{}' on proxy '{proxy}'",
                    t["name"].as_str().unwrap_or_default()
                )?;
            }
            ProxyCommand::Toxic(ToxicCommand::Update {
                proxy,
                name,
                toxicity,
                attributes,
            }) => {
                let mut body = serde_json::json!({"attributes": attribute_pairs(&attributes)?});
                if let Some(t) = toxicity {
                    body["toxicity"] = Value::from(t);
                }
                self.call(
                    "PATCH",
                    &format!("/proxies/{proxy}/toxics/{name}"),
                    Some(body),
                )
                .context("failed to update toxic")?;
                outln!("Updated toxic '{name}' on proxy '{proxy}'")?;
            }
            ProxyCommand::Toxic(ToxicCommand::Remove { proxy, name }) => {
                self.call("DELETE", &format!("/proxies/{proxy}/toxics/{name}"), None)
                    .context("failed to remove toxic")?;
                outln!("Removed toxic '{name}' on proxy '{proxy}'")?;
            }
        }
        Ok(super::OK)
    }
}
