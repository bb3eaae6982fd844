//! Docker containers as instances, through the Docker Engine API.
//!
//! A running container is an instance only when it carries the label `simian.app`: nothing is
//! ever selected by name or image. `simian.stack`, `simian.detail`, `simian.cluster`,
//! `simian.account` (default `local`), `simian.region` (default `local`) and `simian.zone`
//! describe it, as the process provider's environment variables do; every other label is an
//! instance label. A container of a Compose service without `simian.cluster`, `simian.stack`
//! or `simian.detail` is in cluster `project-service`. The instance id is the full container
//! id, so a container recreated under the same name is never mistaken for the one drawn.
//!
//! Listing is one API call, however many containers run. Termination re-reads the container
//! (still running, still the same app, still matching the selector), acts (`stop`: SIGTERM,
//! the grace period, SIGKILL; `kill`: one signal; `restart`), and verifies the outcome by
//! inspecting it again. A container that no longer exists or no longer runs is already gone.
//! The container Simian itself runs in is never touched.
//!
//! A drill's `pause` freezes a container (`docker pause`) and unpauses it; `isolate` disconnects
//! it from every network it is attached to, after recording each attachment (aliases, links,
//! addresses, driver options) with the lease, and reconnects it exactly so at the end. Both
//! are verified by inspecting the container again.
//!
//! The [`Provider`] seam is synchronous, so this provider blocks on its client through
//! `BlockingApi` (crate::blocking). It connects on first use, not when built, and never keeps a failed
//! connection: a stopped engine is an error each time it
//! is asked, with the socket named, and works again once the engine is back.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    EndpointIpamConfig, EndpointSettings, NetworkConnectRequest, NetworkDisconnectRequest,
};
use bollard::query_parameters::{
    InspectContainerOptions, KillContainerOptions, ListContainersOptions, RestartContainerOptions,
    StopContainerOptions,
};
use serde::{Deserialize, Serialize};
use simian_core::{
    FaultKind, FaultOutcome, Instance, KillOutcome, Labels, Lease, Name, Provider, ProviderError,
};

use crate::blocking::BlockingApi;

/// The labels Simian reads.
pub mod label {
    /// Required: the app (opts the container in).
    pub const APP: &str = "simian.app";
    /// The stack.
    pub const STACK: &str = "simian.stack";
    /// The detail.
    pub const DETAIL: &str = "simian.detail";
    /// An explicit cluster name.
    pub const CLUSTER: &str = "simian.cluster";
    /// The account (default `local`).
    pub const ACCOUNT: &str = "simian.account";
    /// The region (default `local`).
    pub const REGION: &str = "simian.region";
    /// The zone.
    pub const ZONE: &str = "simian.zone";
    /// Compose's project label.
    pub const COMPOSE_PROJECT: &str = "com.docker.compose.project";
    /// Compose's service label.
    pub const COMPOSE_SERVICE: &str = "com.docker.compose.service";
}

/// What a kill does to a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DockerAction {
    /// SIGTERM (or the image's stop signal), the grace period, then SIGKILL.
    Stop,
    /// One signal, then wait for the container to exit.
    Kill {
        /// For example `SIGKILL`.
        signal: String,
    },
    /// Stop, then start again.
    Restart,
    /// Freeze every process of the container (the cgroup freezer) for `pause_for`, under a
    /// lease: it is unpaused at the deadline even if Simian dies (see `simian_core::lease`).
    Pause {
        /// How long the container stays paused (real time).
        pause_for: Duration,
    },
}

impl DockerAction {
    /// The config spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            DockerAction::Stop => "stop",
            DockerAction::Kill { .. } => "kill",
            DockerAction::Restart => "restart",
            DockerAction::Pause { .. } => "pause",
        }
    }
}

/// Settings of a Docker provider.
#[derive(Clone, Debug)]
pub struct DockerConfig {
    /// `unix:///path`, `tcp://host:port` or `http://host:port`; `None`: `$DOCKER_HOST`, else
    /// `unix:///var/run/docker.sock`.
    pub host: Option<String>,
    /// What a kill does.
    pub action: DockerAction,
    /// Time between SIGTERM and SIGKILL (`stop`, `restart`).
    pub grace_period: Duration,
    /// How long to wait for a killed container to exit before reporting failure.
    pub kill_timeout: Duration,
    /// Only containers carrying all these labels are instances.
    pub selector: BTreeMap<String, String>,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            host: None,
            action: DockerAction::Stop,
            grace_period: Duration::from_secs(10),
            kill_timeout: Duration::from_secs(10),
            selector: BTreeMap::new(),
        }
    }
}

/// The oldest Engine API this provider speaks (Docker 1.13).
const MIN_API: (u32, u32) = (1, 25);

/// The engine's address when nothing is configured.
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Containers on a Docker engine.
pub struct DockerProvider {
    name: String,
    config: DockerConfig,
    host: String,
    api: BlockingApi<Docker>,
    own_container: Option<String>,
}

impl std::fmt::Debug for DockerProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerProvider")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("config", &self.config)
            .finish()
    }
}

impl DockerProvider {
    /// A provider named `name`; nothing is contacted until it is used.
    pub fn new(name: impl Into<String>, config: DockerConfig) -> Result<DockerProvider, String> {
        let host = config
            .host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let api = BlockingApi::new("docker-provider", "Docker")?;
        let own_container = std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|text| own_container_id(&text))
            .or_else(|| {
                std::fs::read_to_string("/proc/self/cgroup")
                    .ok()
                    .and_then(|text| own_container_id(&text))
            });
        Ok(DockerProvider {
            name: name.into(),
            config,
            host,
            api,
            own_container,
        })
    }

    /// Treats `id` as the container Simian runs in (tests; detection is automatic).
    pub fn with_own_container(mut self, id: impl Into<String>) -> DockerProvider {
        self.own_container = Some(id.into());
        self
    }

    /// The engine address used.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// How many requests this provider has sent to the engine.
    pub fn api_calls(&self) -> u64 {
        self.api.calls()
    }

    /// The connected client, connecting (and agreeing on an API version) on first use.
    fn client(&self) -> Result<Docker, String> {
        self.api.connection(|api| {
            let host = self.host.as_str();
            let connected = if let Some(path) = host.strip_prefix("unix://") {
                Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
            } else if host.starts_with("tcp://") || host.starts_with("http://") {
                Docker::connect_with_http(
                    &host.replacen("tcp://", "http://", 1),
                    120,
                    bollard::API_DEFAULT_VERSION,
                )
            } else {
                return Err(format!(
                    "unsupported Docker host {host:?}: use unix:///path/to/docker.sock or tcp://host:port"
                ));
            };
            let client = connected.map_err(|e| connection_error(host, &e))?;
            let client = api
                .call(client.negotiate_version())
                .map_err(|e| connection_error(host, &e))?;
            let version = api
                .call(client.version())
                .map_err(|e| connection_error(host, &e))?;
            let version = version.api_version.unwrap_or_default();
            if parse_api(&version).is_none_or(|v| v < MIN_API) {
                return Err(format!(
                    "the Docker engine at {host} speaks API {version:?}; Simian needs {}.{} or later (Docker 1.13): upgrade the engine",
                    MIN_API.0, MIN_API.1
                ));
            }
            Ok(client)
        })
    }

    /// The container's state now: `None` when it no longer exists.
    fn inspect(&self, client: &Docker, id: &str) -> Result<Option<Seen>, bollard::errors::Error> {
        let response = self
            .api
            .call(client.inspect_container(id, None::<InspectContainerOptions>));
        match response {
            Ok(c) => {
                let state = c.state.unwrap_or_default();
                let networks = c
                    .network_settings
                    .and_then(|n| n.networks)
                    .unwrap_or_default();
                Ok(Some(Seen {
                    networks,
                    running: state.running.unwrap_or(false),
                    paused: state.paused.unwrap_or(false),
                    exit_code: state.exit_code,
                    started_at: state.started_at.unwrap_or_default(),
                    labels: c.config.and_then(|c| c.labels).unwrap_or_default(),
                }))
            }
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// What an inspection found.
struct Seen {
    networks: HashMap<String, EndpointSettings>,
    running: bool,
    paused: bool,
    exit_code: Option<i64>,
    started_at: String,
    labels: HashMap<String, String>,
}

/// One network a container was attached to, as recorded before isolating it: what
/// reconnecting it exactly needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Attachment {
    network: String,
    aliases: Vec<String>,
    links: Vec<String>,
    ipv4_address: String,
    ipv6_address: String,
    /// True when the address was chosen by whoever attached it (not by the network's IPAM).
    static_address: bool,
    driver_opts: BTreeMap<String, String>,
}

impl Attachment {
    fn of(network: &str, e: &EndpointSettings) -> Attachment {
        let ipam = e.ipam_config.clone().unwrap_or_default();
        Attachment {
            network: network.to_string(),
            aliases: e.aliases.clone().unwrap_or_default(),
            links: e.links.clone().unwrap_or_default(),
            ipv4_address: e.ip_address.clone().unwrap_or_default(),
            ipv6_address: e.global_ipv6_address.clone().unwrap_or_default(),
            static_address: ipam.ipv4_address.is_some_and(|a| !a.is_empty())
                || ipam.ipv6_address.is_some_and(|a| !a.is_empty()),
            driver_opts: e
                .driver_opts
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
        }
    }

    /// The endpoint to reconnect with; `with_address`: ask for the address it had.
    fn endpoint(&self, with_address: bool) -> EndpointSettings {
        let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        let address = |a: &String| (!a.is_empty()).then(|| a.clone());
        EndpointSettings {
            aliases: non_empty(&self.aliases),
            links: non_empty(&self.links),
            driver_opts: (!self.driver_opts.is_empty())
                .then(|| self.driver_opts.clone().into_iter().collect()),
            ipam_config: with_address.then(|| EndpointIpamConfig {
                ipv4_address: address(&self.ipv4_address),
                ipv6_address: address(&self.ipv6_address),
                ..EndpointIpamConfig::default()
            }),
            ..EndpointSettings::default()
        }
    }
}

/// The attachments a lease's memo recorded.
fn memo_attachments(lease: &Lease) -> Result<Vec<Attachment>, String> {
    let memo = lease
        .memo
        .as_deref()
        .ok_or("the lease holds no record of the container's networks")?;
    serde_json::from_str(memo)
        .map_err(|e| format!("the lease's record of the networks is unreadable: {e}"))
}

/// The HTTP status of an engine's answer, if the error is one.
fn status(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// A connection failure said so that the reader knows what to do.
fn connection_error(host: &str, e: &bollard::errors::Error) -> String {
    if let bollard::errors::Error::SocketNotFoundError(path) = e {
        return format!(
            "no Docker engine at {host}: {path} does not exist; start the engine, or set host in the provider's config (or $DOCKER_HOST)"
        );
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    return format!(
                        "permission denied on the Docker socket {host}: run simian as root or as a member of the docker group (access to the socket is root-equivalent)"
                    );
                }
                std::io::ErrorKind::NotFound => {
                    return format!(
                        "no Docker engine at {host}: the socket does not exist; start the engine, or set host in the provider's config (or $DOCKER_HOST)"
                    );
                }
                std::io::ErrorKind::ConnectionRefused => {
                    return format!(
                        "no Docker engine answers at {host} (connection refused): start the engine, or check host"
                    );
                }
                _ => {}
            }
        }
        source = err.source();
    }
    format!("cannot reach the Docker engine at {host}: {e}")
}

/// `1.41` as (1, 41).
fn parse_api(version: &str) -> Option<(u32, u32)> {
    let (major, minor) = version.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The id of the container this process runs in, from `/proc/self/mountinfo` or
/// `/proc/self/cgroup`; `None` on a host.
///
/// In mountinfo, only the files the engine bind-mounts into a container count (`/etc/hostname`,
/// `/etc/hosts`, `/etc/resolv.conf`, mounted from `.../containers/<id>/...`): a host's own
/// mountinfo lists every container's `.../containers/<id>/mounts/shm`, which must not make the
/// first container look like Simian's own. In cgroup, `.../docker/<id>` (v1) or
/// `docker-<id>.scope` (systemd).
pub fn own_container_id(text: &str) -> Option<String> {
    let id_after = |s: &str, marker: &str| -> Option<String> {
        let mut rest = s;
        while let Some(at) = rest.find(marker) {
            rest = &rest[at + marker.len()..];
            let candidate: String = rest.chars().take(64).collect();
            if candidate.len() == 64 && candidate.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(candidate);
            }
        }
        None
    };
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT ..."
        if let [_, _, _, root, mount_point, ..] = fields.as_slice()
            && matches!(
                *mount_point,
                "/etc/hostname" | "/etc/hosts" | "/etc/resolv.conf"
            )
            && let Some(id) = id_after(root, "/containers/")
        {
            return Some(id);
        }
        // cgroup: "HIERARCHY:CONTROLLERS:PATH"
        if let Some(path) = line.splitn(3, ':').nth(2)
            && fields.len() == 1
            && let Some(id) = id_after(path, "/docker/").or_else(|| id_after(path, "docker-"))
        {
            return Some(id);
        }
    }
    None
}

/// The instance a container's labels describe: `Ok(None)` when it is not opted in or does
/// not match `selector`; `Err` names the label that holds a control character.
pub fn instance_from_labels(
    id: &str,
    labels: &HashMap<String, String>,
    selector: &BTreeMap<String, String>,
) -> Result<Option<Instance>, String> {
    let Some(app) = labels.get(label::APP).filter(|a| !a.trim().is_empty()) else {
        return Ok(None);
    };
    if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
        return Ok(None);
    }
    let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
    let or_local = |k: &str| {
        labels
            .get(k)
            .filter(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| "local".into())
    };
    let (stack, detail, mut cluster) = (get(label::STACK), get(label::DETAIL), get(label::CLUSTER));
    if cluster.is_empty()
        && stack.is_empty()
        && detail.is_empty()
        && let (Some(project), Some(service)) = (
            labels.get(label::COMPOSE_PROJECT),
            labels.get(label::COMPOSE_SERVICE),
        )
    {
        cluster = format!("{project}-{service}");
    }
    let own = [
        label::APP,
        label::STACK,
        label::DETAIL,
        label::CLUSTER,
        label::ACCOUNT,
        label::REGION,
        label::ZONE,
    ];
    let mut instance = Instance {
        id: Name::from(id),
        app: Name::from(app.as_str()),
        account: or_local(label::ACCOUNT).into(),
        region: or_local(label::REGION).into(),
        zone: get(label::ZONE).into(),
        stack: stack.into(),
        detail: detail.into(),
        cluster: cluster.into(),
        labels: labels
            .iter()
            .filter(|(k, _)| !own.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Labels>(),
    };
    instance.normalize();
    match instance.field_with_control_character() {
        Some(field) => Err(field),
        None => Ok(Some(instance)),
    }
}

impl Provider for DockerProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "docker"
    }

    fn instances(&self) -> Result<Vec<Instance>, ProviderError> {
        let client = self
            .client()
            .map_err(|e| ProviderError::inventory(&self.name, e))?;
        // One call for every opted-in running container, whatever their number.
        let options = ListContainersOptions {
            all: false,
            filters: Some(HashMap::from([
                ("label".to_string(), vec![label::APP.to_string()]),
                ("status".to_string(), vec!["running".to_string()]),
            ])),
            ..ListContainersOptions::default()
        };
        let listed = self
            .api
            .call(client.list_containers(Some(options)))
            .map_err(|e| {
                self.api.forget();
                ProviderError::inventory(&self.name, connection_error(&self.host, &e))
            })?;
        let mut out = Vec::with_capacity(listed.len());
        for c in listed {
            let Some(id) = c.id else { continue };
            if self.own_container.as_deref() == Some(id.as_str()) {
                continue;
            }
            match instance_from_labels(&id, &c.labels.unwrap_or_default(), &self.config.selector) {
                Ok(Some(instance)) => out.push(instance),
                Ok(None) => {}
                Err(field) => tracing::warn!(
                    provider = %self.name,
                    container = %id,
                    field = %field,
                    "skipping a container whose simian labels hold a control character; fix its labels"
                ),
            }
        }
        Ok(out)
    }

    fn lease(&self) -> Option<(FaultKind, Duration)> {
        match self.config.action {
            DockerAction::Pause { pause_for } => Some((FaultKind::Pause, pause_for)),
            _ => None,
        }
    }

    fn undo(&self, lease: &Lease) -> Result<String, ProviderError> {
        let client = self
            .client()
            .map_err(|message| self.lease_failure(lease, message))?;
        match lease.kind {
            FaultKind::Pause => self.unpause(&client, lease),
            FaultKind::Isolate => self.reconnect(&client, lease),
            FaultKind::Toxic => {
                Err(self.lease_failure(lease, "a docker provider makes no toxic faults".into()))
            }
        }
    }

    fn faults(&self) -> &'static [FaultKind] {
        &[FaultKind::Pause, FaultKind::Isolate]
    }

    fn fault_memo(
        &self,
        instance: &Instance,
        kind: FaultKind,
    ) -> Result<Option<String>, ProviderError> {
        if kind != FaultKind::Isolate {
            return Ok(None);
        }
        let client = self
            .client()
            .map_err(|e| ProviderError::action(&self.name, instance, e))?;
        let Some(seen) = self.checked(&client, instance)? else {
            return Ok(None);
        };
        if let Some(mode) = ["host", "none"]
            .iter()
            .find(|m| seen.networks.contains_key(**m))
        {
            return Err(ProviderError::refused(
                &self.name,
                instance,
                format!("it uses network mode {mode}: there is no network to disconnect it from"),
            ));
        }
        let mut attachments: Vec<Attachment> = seen
            .networks
            .iter()
            .map(|(name, e)| Attachment::of(name, e))
            .collect();
        attachments.sort_by(|a, b| a.network.cmp(&b.network));
        serde_json::to_string(&attachments).map(Some).map_err(|e| {
            ProviderError::action(
                &self.name,
                instance,
                format!("cannot record its networks: {e}"),
            )
        })
    }

    fn make_fault(
        &self,
        instance: &Instance,
        lease: &Lease,
    ) -> Result<FaultOutcome, ProviderError> {
        let client = self
            .client()
            .map_err(|e| ProviderError::action(&self.name, instance, e))?;
        let Some(before) = self.checked(&client, instance)? else {
            return Ok(FaultOutcome::AlreadyGone);
        };
        match lease.kind {
            FaultKind::Pause => self.pause(&client, instance, &before),
            FaultKind::Isolate => self.isolate(&client, instance, lease),
            FaultKind::Toxic => Err(ProviderError::refused(
                &self.name,
                instance,
                "a docker provider cannot add a toxic to a container",
            )),
        }
    }

    fn terminate(
        &self,
        instance: &Instance,
        _termination: i64,
    ) -> Result<KillOutcome, ProviderError> {
        let id = instance.id.as_str();
        let client = self
            .client()
            .map_err(|e| ProviderError::action(&self.name, instance, e))?;
        let Some(before) = self.checked(&client, instance)? else {
            return Ok(KillOutcome::AlreadyGone);
        };
        if let DockerAction::Pause { pause_for } = self.config.action {
            // Paused already: an earlier attempt of this same kill (resumed after a crash)
            // made the fault, and its lease undoes it.
            return Ok(match self.pause(&client, instance, &before)? {
                FaultOutcome::Made { detail } => KillOutcome::Paused {
                    detail: format!("paused ({detail}) for {pause_for:?}"),
                },
                FaultOutcome::AlreadyGone => KillOutcome::AlreadyGone,
            });
        }
        if before.paused {
            return Err(ProviderError::refused(
                &self.name,
                instance,
                "it is paused: unpause it first (a pause or a drill may be under way)",
            ));
        }
        let started = Instant::now();
        let grace = i32::try_from(self.config.grace_period.as_secs()).unwrap_or(i32::MAX);
        let acted = match &self.config.action {
            DockerAction::Stop => self.api.call(client.stop_container(
                id,
                Some(StopContainerOptions {
                    t: Some(grace),
                    signal: None,
                }),
            )),
            DockerAction::Kill { signal } => self.api.call(client.kill_container(
                id,
                Some(KillContainerOptions {
                    signal: signal.clone(),
                }),
            )),
            DockerAction::Restart => self.api.call(client.restart_container(
                id,
                Some(RestartContainerOptions {
                    t: Some(grace),
                    signal: None,
                }),
            )),
            // Paused above, through the drill's fault path.
            DockerAction::Pause { .. } => Ok(()),
        };
        match acted {
            Ok(()) => {}
            // Gone, already stopped (304), or not running any more (409): it died first.
            Err(e) if matches!(status(&e), Some(404 | 304 | 409)) => {
                return Ok(KillOutcome::AlreadyGone);
            }
            Err(e) => {
                return Err(ProviderError::action(
                    &self.name,
                    instance,
                    format!(
                        "{} failed: {}",
                        self.config.action.as_str(),
                        connection_error(&self.host, &e)
                    ),
                ));
            }
        }
        self.verify(&client, instance, &before, started)
    }
}

impl DockerProvider {
    /// The container `instance` names, inspected, if it still runs and may be touched:
    /// `Ok(None)` when it is gone or stopped; refused when it is Simian's own container or no
    /// longer carries the app (or the selector).
    fn checked(&self, client: &Docker, instance: &Instance) -> Result<Option<Seen>, ProviderError> {
        let id = instance.id.as_str();
        if self.own_container.as_deref() == Some(id) {
            return Err(ProviderError::refused(
                &self.name,
                instance,
                "it is the container Simian runs in",
            ));
        }
        let unreachable = |e: bollard::errors::Error| {
            self.api.forget();
            ProviderError::action(&self.name, instance, connection_error(&self.host, &e))
        };
        let Some(before) = self.inspect(client, id).map_err(unreachable)? else {
            return Ok(None);
        };
        if !before.running {
            return Ok(None);
        }
        match instance_from_labels(id, &before.labels, &self.config.selector) {
            Ok(Some(now)) if now.app == instance.app => {}
            Ok(Some(now)) => {
                return Err(ProviderError::refused(
                    &self.name,
                    instance,
                    format!(
                        "its {} label now says {:?}, not {:?}",
                        label::APP,
                        now.app,
                        instance.app
                    ),
                ));
            }
            Ok(None) => {
                return Err(ProviderError::refused(
                    &self.name,
                    instance,
                    format!(
                        "it no longer carries {} or no longer matches the selector",
                        label::APP
                    ),
                ));
            }
            Err(field) => {
                return Err(ProviderError::refused(
                    &self.name,
                    instance,
                    format!("its {field} holds a control character"),
                ));
            }
        }
        Ok(Some(before))
    }

    /// Freezes the container and verifies it is paused.
    fn pause(
        &self,
        client: &Docker,
        instance: &Instance,
        before: &Seen,
    ) -> Result<FaultOutcome, ProviderError> {
        let id = instance.id.as_str();
        if before.paused {
            // An earlier attempt of this same fault (resumed after a crash) made it.
            return Ok(FaultOutcome::Made {
                detail: "already paused (by an earlier attempt)".into(),
            });
        }
        let started = Instant::now();
        match self.api.call(client.pause_container(id)) {
            Ok(()) => {}
            Err(e) if matches!(status(&e), Some(404 | 409)) => {
                return Ok(FaultOutcome::AlreadyGone);
            }
            Err(e) => {
                return Err(ProviderError::action(
                    &self.name,
                    instance,
                    format!("pause failed: {}", connection_error(&self.host, &e)),
                ));
            }
        }
        self.verify_fault(client, instance, started, "pause", |seen| seen.paused)
    }

    /// Disconnects the container from every network the lease's memo lists, and verifies it.
    fn isolate(
        &self,
        client: &Docker,
        instance: &Instance,
        lease: &Lease,
    ) -> Result<FaultOutcome, ProviderError> {
        let id = instance.id.as_str();
        let attachments =
            memo_attachments(lease).map_err(|e| ProviderError::action(&self.name, instance, e))?;
        let started = Instant::now();
        for a in &attachments {
            let request = NetworkDisconnectRequest {
                container: id.to_string(),
                force: Some(true),
            };
            match self
                .api
                .call(client.disconnect_network(&a.network, request))
            {
                Ok(()) => {}
                // Not attached any more (an earlier attempt), or the network is gone.
                Err(e) if matches!(status(&e), Some(404 | 409)) => {}
                Err(e) if status(&e) == Some(500) && e.to_string().contains("not connected") => {}
                Err(e) => {
                    return Err(ProviderError::action(
                        &self.name,
                        instance,
                        format!(
                            "disconnecting from network {} failed: {}",
                            a.network,
                            connection_error(&self.host, &e)
                        ),
                    ));
                }
            }
        }
        let names: Vec<&str> = attachments.iter().map(|a| a.network.as_str()).collect();
        self.verify_fault(client, instance, started, "isolate", |seen| {
            names.iter().all(|n| !seen.networks.contains_key(*n))
        })
        .map(|outcome| match outcome {
            FaultOutcome::Made { detail } => FaultOutcome::Made {
                detail: format!("disconnected from {}; {detail}", names.join(", ")),
            },
            gone => gone,
        })
    }

    /// Inspects the container until `done` holds, or the kill timeout passes.
    fn verify_fault(
        &self,
        client: &Docker,
        instance: &Instance,
        started: Instant,
        action: &str,
        done: impl Fn(&Seen) -> bool,
    ) -> Result<FaultOutcome, ProviderError> {
        let deadline = Instant::now() + self.config.kill_timeout;
        loop {
            let seen = self.inspect(client, instance.id.as_str()).map_err(|e| {
                ProviderError::action(
                    &self.name,
                    instance,
                    format!("{action} done, but verifying it failed: {e}"),
                )
            })?;
            match seen {
                None => return Ok(FaultOutcome::AlreadyGone),
                Some(now) if done(&now) => {
                    return Ok(FaultOutcome::Made {
                        detail: format!("verified after {} ms", started.elapsed().as_millis()),
                    });
                }
                Some(_) if Instant::now() >= deadline => {
                    return Err(ProviderError::action(
                        &self.name,
                        instance,
                        format!(
                            "{action} sent, but it does not show {} ms later",
                            started.elapsed().as_millis()
                        ),
                    ));
                }
                Some(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// An undo of `lease` that failed, saying `message`.
    fn lease_failure(&self, lease: &Lease, message: String) -> ProviderError {
        ProviderError::Action {
            provider: self.name.clone(),
            instance_id: lease.instance_id.clone(),
            message,
        }
    }

    /// Reconnects the container to every network of the lease's memo it is not attached to,
    /// asking for the address it had, and verifies it.
    fn reconnect(&self, client: &Docker, lease: &Lease) -> Result<String, ProviderError> {
        let id = lease.instance_id.as_str();
        let failed = |message: String| self.lease_failure(lease, message);
        let unreachable = |e: bollard::errors::Error| {
            self.api.forget();
            failed(connection_error(&self.host, &e))
        };
        let Some(now) = self.inspect(client, id).map_err(unreachable)? else {
            return Ok("nothing to undo: the container is gone".into());
        };
        let attachments = memo_attachments(lease).map_err(failed)?;
        if attachments
            .iter()
            .all(|a| now.networks.contains_key(&a.network))
        {
            return Ok("nothing to undo: the container is attached to every network it had".into());
        }
        let mut notes = Vec::new();
        for a in attachments
            .iter()
            .filter(|a| !now.networks.contains_key(&a.network))
        {
            let connect = |with_address: bool| {
                self.api.call(client.connect_network(
                    &a.network,
                    NetworkConnectRequest {
                        container: id.to_string(),
                        endpoint_config: Some(a.endpoint(with_address)),
                    },
                ))
            };
            match connect(!a.ipv4_address.is_empty() || !a.ipv6_address.is_empty()) {
                Ok(()) => {}
                // A network whose addresses its IPAM alone hands out (no configured subnet,
                // or the default bridge): reconnect and let it choose.
                Err(e)
                    if !a.static_address
                        && status(&e).is_some_and(|s| s == 400 || s == 403 || s == 500) =>
                {
                    connect(false).map_err(|e| {
                        failed(format!(
                            "reconnecting to network {} failed: {}",
                            a.network,
                            connection_error(&self.host, &e)
                        ))
                    })?;
                    notes.push(format!("{}: the network chose the address", a.network));
                }
                Err(e) if status(&e) == Some(404) && e.to_string().contains("network") => {
                    notes.push(format!("{}: the network no longer exists", a.network));
                }
                Err(e) if status(&e) == Some(404) => {
                    return Ok("nothing to undo: the container is gone".into());
                }
                Err(e) => {
                    return Err(failed(format!(
                        "reconnecting to network {} failed: {}",
                        a.network,
                        connection_error(&self.host, &e)
                    )));
                }
            }
        }
        let deadline = Instant::now() + self.config.kill_timeout;
        loop {
            let Some(seen) = self.inspect(client, id).map_err(unreachable)? else {
                return Ok("reconnected; the container is gone since".into());
            };
            let missing: Vec<&str> = attachments
                .iter()
                .filter(|a| !seen.networks.contains_key(&a.network))
                .filter(|a| {
                    !notes
                        .iter()
                        .any(|n| n.starts_with(&format!("{}: the network no longer", a.network)))
                })
                .map(|a| a.network.as_str())
                .collect();
            if missing.is_empty() {
                let held = jiff::Timestamp::now().duration_since(lease.created_at);
                let names: Vec<&str> = attachments.iter().map(|a| a.network.as_str()).collect();
                let mut detail = format!(
                    "reconnected to {} (verified) after {:.1} s isolated",
                    names.join(", "),
                    held.as_secs_f64()
                );
                if !notes.is_empty() {
                    detail.push_str(&format!(" ({})", notes.join("; ")));
                }
                return Ok(detail);
            }
            if Instant::now() >= deadline {
                return Err(failed(format!(
                    "reconnected, but not attached to {} yet",
                    missing.join(", ")
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Unpauses the container and verifies it runs.
    fn unpause(&self, client: &Docker, lease: &Lease) -> Result<String, ProviderError> {
        let id = lease.instance_id.as_str();
        let failed = |message: String| self.lease_failure(lease, message);
        let unreachable = |e: bollard::errors::Error| {
            self.api.forget();
            failed(connection_error(&self.host, &e))
        };
        match self.inspect(client, id).map_err(unreachable)? {
            None => return Ok("nothing to undo: the container is gone".into()),
            Some(seen) if !seen.paused => {
                return Ok("nothing to undo: the container is not paused".into());
            }
            Some(_) => {}
        }
        match self.api.call(client.unpause_container(id)) {
            Ok(()) => {}
            Err(e) if matches!(status(&e), Some(404 | 409)) => {}
            Err(e) => {
                return Err(failed(format!(
                    "unpause failed: {}",
                    connection_error(&self.host, &e)
                )));
            }
        }
        let deadline = Instant::now() + self.config.kill_timeout;
        loop {
            match self.inspect(client, id).map_err(unreachable)? {
                None => return Ok("unpaused; the container is gone since".into()),
                Some(seen) if !seen.paused => {
                    let held = jiff::Timestamp::now().duration_since(lease.created_at);
                    return Ok(format!(
                        "unpaused (verified) after {:.1} s paused",
                        held.as_secs_f64()
                    ));
                }
                Some(_) if Instant::now() >= deadline => {
                    return Err(failed(
                        "unpause sent, but the container is still paused".into(),
                    ));
                }
                Some(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Inspects the container until the action's outcome shows, or the kill timeout passes.
    fn verify(
        &self,
        client: &Docker,
        instance: &Instance,
        before: &Seen,
        started: Instant,
    ) -> Result<KillOutcome, ProviderError> {
        let id = instance.id.as_str();
        let deadline = Instant::now() + self.config.kill_timeout;
        let action = self.config.action.as_str();
        loop {
            let seen = self.inspect(client, id).map_err(|e| {
                ProviderError::action(
                    &self.name,
                    instance,
                    format!("{action} done, but verifying it failed: {e}"),
                )
            })?;
            let elapsed = started.elapsed().as_millis();
            match (&self.config.action, seen) {
                (DockerAction::Restart, Some(now))
                    if now.running && now.started_at != before.started_at =>
                {
                    return Ok(KillOutcome::Killed {
                        detail: format!("restarted; running again after {elapsed} ms"),
                    });
                }
                (DockerAction::Restart, None) => {
                    return Err(ProviderError::action(
                        &self.name,
                        instance,
                        "restarted, then removed before it ran again",
                    ));
                }
                (DockerAction::Restart, Some(_)) => {}
                (_, None) => {
                    return Ok(KillOutcome::Killed {
                        detail: format!("{action}: gone (removed) after {elapsed} ms"),
                    });
                }
                (_, Some(now)) if !now.running => {
                    let code = now
                        .exit_code
                        .map_or("unknown".to_string(), |c| c.to_string());
                    return Ok(KillOutcome::Killed {
                        detail: format!("{action}: exited with code {code} after {elapsed} ms"),
                    });
                }
                (_, Some(_)) => {}
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::action(
                    &self.name,
                    instance,
                    format!(
                        "{action} done, but the container still runs {} ms later",
                        elapsed
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_describe_the_instance() {
        let none = BTreeMap::new();
        let i = instance_from_labels(
            "abc",
            &labels(&[
                ("simian.app", "web"),
                ("simian.stack", "prod"),
                ("simian.zone", "z1"),
                ("team", "core"),
            ]),
            &none,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (
                i.app.as_str(),
                i.account.as_str(),
                i.region.as_str(),
                i.zone.as_str()
            ),
            ("web", "local", "local", "z1")
        );
        assert_eq!(i.cluster, "web-prod");
        assert_eq!(i.labels.get("team").map(Name::as_str), Some("core"));
        assert!(
            !i.labels.contains_key("simian.app"),
            "simian labels are fields"
        );
        assert_eq!(
            instance_from_labels("x", &labels(&[("team", "core")]), &none),
            Ok(None)
        );
        let selector = BTreeMap::from([("team".to_string(), "data".to_string())]);
        assert_eq!(
            instance_from_labels(
                "x",
                &labels(&[("simian.app", "web"), ("team", "core")]),
                &selector
            ),
            Ok(None)
        );
        assert_eq!(
            instance_from_labels("x", &labels(&[("simian.app", "web\u{1b}[2J")]), &none),
            Err("app".to_string())
        );
    }

    #[test]
    fn compose_services_name_the_cluster_unless_simian_labels_do() {
        let none = BTreeMap::new();
        let compose = [
            ("simian.app", "shop"),
            ("com.docker.compose.project", "store"),
            ("com.docker.compose.service", "web"),
        ];
        let i = instance_from_labels("a", &labels(&compose), &none)
            .unwrap()
            .unwrap();
        assert_eq!(i.cluster, "store-web");
        let mut explicit = compose.to_vec();
        explicit.push(("simian.stack", "prod"));
        let i = instance_from_labels("a", &labels(&explicit), &none)
            .unwrap()
            .unwrap();
        assert_eq!(i.cluster, "shop-prod");
    }

    #[test]
    fn finds_its_own_container() {
        let id = "3f1c".repeat(16);
        let mountinfo = format!(
            "611 590 0:52 /docker/containers/{id}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw\n"
        );
        assert_eq!(own_container_id(&mountinfo), Some(id.clone()));
        assert_eq!(
            own_container_id(&format!("0::/system.slice/docker-{id}.scope\n")),
            Some(id.clone())
        );
        assert_eq!(
            own_container_id(&format!("12:pids:/docker/{id}\n")),
            Some(id)
        );
        assert_eq!(own_container_id("0::/user.slice/session-1.scope\n"), None);
        // A host lists every container's shm mount: none of them is ours.
        let host = format!(
            "845 29 0:70 / /var/lib/docker/containers/{}/mounts/shm rw,nosuid - tmpfs shm rw\n",
            "ab12".repeat(16)
        );
        assert_eq!(own_container_id(&host), None);
    }

    #[test]
    fn api_versions() {
        assert_eq!(parse_api("1.41"), Some((1, 41)));
        assert!(parse_api("1.24").is_some_and(|v| v < MIN_API));
        assert_eq!(parse_api("x"), None);
    }
}
