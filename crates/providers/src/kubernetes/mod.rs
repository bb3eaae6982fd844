//! Kubernetes pods as instances, through the Kubernetes API (kube-rs).
//!
//! Listing is one call per resource kind (pods, replica sets, nodes) and page of 500, per
//! configured namespace, however many pods there are; [`fleet`] turns the listing into
//! instances (opt-in label, grouping by owning workload, zones from nodes, eligibility).
//!
//! A kill re-reads the pod (the same UID, still opted in, not terminating, not Simian's own
//! pod, not the only ready replica of its workload), then evicts it through the Eviction API,
//! so PodDisruptionBudgets hold (a 429 answer is a refusal that names the budget), or deletes
//! it with the grace period and the UID as a precondition; then it verifies that the pod
//! with that UID is gone or terminating, and writes an Event on it (`reason:
//! SimianTermination`), so that `kubectl describe pod` says why it died.
//!
//! The [`Provider`] seam is synchronous, so this provider blocks on its client through
//! `BlockingApi` (crate::blocking), as the Docker provider does. It connects on first use and forgets a
//! connection that failed.

pub mod fleet;
pub mod selector;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, EventSource, Node, ObjectReference, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use kube::api::{
    Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams, Preconditions,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use simian_core::{
    Check, FaultKind, FaultOutcome, Instance, KillOutcome, Lease, Provider, ProviderError,
};

use crate::blocking::BlockingApi;

pub use fleet::{Listing, Rules, Skipped};
pub use selector::Selector;

/// What a kill does to a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KubernetesAction {
    /// The Eviction API: PodDisruptionBudgets are respected.
    Evict,
    /// A plain delete with the grace period: budgets are not consulted.
    Delete,
}

impl KubernetesAction {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KubernetesAction::Evict => "evict",
            KubernetesAction::Delete => "delete",
        }
    }
}

/// Settings of a Kubernetes provider.
#[derive(Clone, Debug)]
pub struct KubernetesConfig {
    /// A kubeconfig file; `None`: `$KUBECONFIG`, else `~/.kube/config`, else the in-cluster
    /// service account.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; `None`: the current one.
    pub context: Option<String>,
    /// The account of every instance; `None`: the context's name (in-cluster: `in-cluster`).
    pub account: Option<String>,
    /// Namespaces to list; empty: every namespace but `kube-system`.
    pub namespaces: Vec<String>,
    /// Only pods whose labels match.
    pub selector: Selector,
    /// What a kill does.
    pub action: KubernetesAction,
    /// The grace period of the kill; `None`: the pod's own `terminationGracePeriodSeconds`.
    pub grace_period: Option<Duration>,
    /// Pods younger than this are not eligible.
    pub minimum_age: Duration,
    /// The label that opts a pod in and names its app.
    pub app_label: String,
    /// Apps whose only ready replica may be killed.
    pub single_replica_apps: BTreeSet<String>,
    /// How long to wait for an evicted or deleted pod to be gone or terminating.
    pub verify_timeout: Duration,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            kubeconfig: None,
            context: None,
            account: None,
            namespaces: Vec::new(),
            selector: Selector::default(),
            action: KubernetesAction::Evict,
            grace_period: None,
            minimum_age: Duration::ZERO,
            app_label: fleet::label::APP.to_string(),
            single_replica_apps: BTreeSet::new(),
            verify_timeout: Duration::from_secs(10),
        }
    }
}

/// Page size of every list call.
const PAGE: u32 = 500;

/// The namespace no configuration without an explicit list ever touches.
const SYSTEM_NAMESPACE: &str = "kube-system";

/// The connection: a client and the account its context gives.
#[derive(Clone)]
struct Connection {
    client: Client,
    account: String,
    /// What the connection is, for messages: the server's URL.
    server: String,
}

/// Pods of a Kubernetes cluster.
pub struct KubernetesProvider {
    name: String,
    config: KubernetesConfig,
    api: BlockingApi<Connection>,
    /// (namespace, name) of the pod Simian runs in, if it runs in one.
    own_pod: Option<(String, String)>,
}

impl std::fmt::Debug for KubernetesProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesProvider")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish()
    }
}

impl KubernetesProvider {
    /// A provider named `name`; nothing is contacted until it is used.
    pub fn new(
        name: impl Into<String>,
        config: KubernetesConfig,
    ) -> Result<KubernetesProvider, String> {
        let api = BlockingApi::new("kubernetes-provider", "Kubernetes")?;
        // In a cluster, the pod's name is its hostname, and the namespace is mounted with
        // the service account (or given through the downward API as POD_NAMESPACE).
        let own_pod = std::env::var("KUBERNETES_SERVICE_HOST").ok().and_then(|_| {
            let name = std::env::var("HOSTNAME").ok()?;
            let namespace = std::env::var("POD_NAMESPACE").ok().or_else(|| {
                std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                    .ok()
            })?;
            Some((namespace.trim().to_string(), name))
        });
        Ok(KubernetesProvider {
            name: name.into(),
            config,
            api,
            own_pod,
        })
    }

    /// Treats the pod `namespace/name` as the one Simian runs in (tests; detection is
    /// automatic in a cluster).
    pub fn with_own_pod(mut self, namespace: &str, name: &str) -> KubernetesProvider {
        self.own_pod = Some((namespace.to_string(), name.to_string()));
        self
    }

    /// How many requests this provider has sent to the API server.
    pub fn api_calls(&self) -> u64 {
        self.api.calls()
    }

    /// The connection, made on first use.
    /// The pods of `namespace` that the label `selector` matches (every pod without one),
    /// with their creation time in seconds: what an experiment's `chaosk8s` terminate_pods
    /// chooses from. Simian's own pod is never among them.
    pub fn namespace_pods(
        &self,
        namespace: &str,
        selector: Option<&str>,
    ) -> Result<Vec<(String, i64)>, String> {
        // Matched here too, not only by the server: the same selector grammar as the
        // provider's own `selector`, and a server that ignored it cannot widen the choice.
        let wanted = selector
            .map(selector::Selector::parse)
            .transpose()
            .map_err(|e| format!("label_selector {:?}: {e}", selector.unwrap_or_default()))?;
        let c = self.connection()?;
        let pods: Vec<Pod> = self.list_all(&c.client, Some(namespace), selector, &c.server)?;
        Ok(pods
            .into_iter()
            .filter(|p| {
                wanted
                    .as_ref()
                    .is_none_or(|w| w.matches(&p.metadata.labels.clone().unwrap_or_default()))
            })
            .filter_map(|p| {
                let name = p.metadata.name?;
                let created = p.metadata.creation_timestamp.map_or(0, |t| t.0.as_second());
                Some((name, created))
            })
            .filter(|(name, _)| {
                self.own_pod.as_ref() != Some(&(namespace.to_string(), name.clone()))
            })
            .collect())
    }

    /// Deletes pod `name` of `namespace` (with `grace` seconds, else the pod's own), as
    /// `chaosk8s` terminate_pods does; false when it was already gone. Never Simian's own pod.
    pub fn delete_namespace_pod(
        &self,
        namespace: &str,
        name: &str,
        grace: Option<u32>,
    ) -> Result<bool, String> {
        if self.own_pod.as_ref() == Some(&(namespace.to_string(), name.to_string())) {
            return Err(format!(
                "refusing to delete {namespace}/{name}: it is Simian's own pod"
            ));
        }
        let c = self.connection()?;
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), namespace);
        let mut params = DeleteParams::default();
        if let Some(g) = grace {
            params = params.grace_period(g);
        }
        match self.api.call(pods.delete(name, &params)) {
            Ok(_) => Ok(true),
            Err(e) if status_code(&e) == Some(404) => Ok(false),
            Err(e) => Err(api_error(&e, &c.server, "delete", "pods", Some(namespace))),
        }
    }

    fn connection(&self) -> Result<Connection, String> {
        self.api.connection(|api| api.run(connect(&self.config)))
    }

    fn rules(&self, account: &str) -> Rules {
        Rules {
            app_label: self.config.app_label.clone(),
            account: account.to_string(),
            minimum_age: self.config.minimum_age,
            single_replica_apps: self.config.single_replica_apps.clone(),
            selector: self.config.selector.clone(),
            excluded_namespaces: if self.config.namespaces.is_empty() {
                [SYSTEM_NAMESPACE.to_string()].into()
            } else {
                BTreeSet::new()
            },
        }
    }

    /// Every object of kind `K` in `namespace` (all namespaces: `None`), page by page.
    fn list_all<K>(
        &self,
        client: &Client,
        namespace: Option<&str>,
        selector: Option<&str>,
        server: &str,
    ) -> Result<Vec<K>, String>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let mut params = ListParams::default().limit(PAGE);
        if let Some(s) = selector.filter(|s| !s.is_empty()) {
            params = params.labels(s);
        }
        self.pages(&api, params, |e| {
            api_error(e, server, "list", &plural::<K>(), namespace)
        })
    }

    fn list_nodes(&self, client: &Client, server: &str) -> Result<Vec<Node>, String> {
        let api: Api<Node> = Api::all(client.clone());
        self.pages(&api, ListParams::default().limit(PAGE), |e| {
            api_error(e, server, "list", "nodes", None)
        })
    }

    /// Every item of a list, page by page. A server that hands back a continue token it
    /// gave before would make this loop for ever: that is an error instead.
    fn pages<K>(
        &self,
        api: &Api<K>,
        mut params: ListParams,
        error: impl Fn(&kube::Error) -> String,
    ) -> Result<Vec<K>, String>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        loop {
            let page = self.api.call(api.list(&params)).map_err(|e| error(&e))?;
            out.extend(page.items);
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) if !seen.insert(token.clone()) => {
                    return Err(format!(
                        "the API server handed back the continue token {token:?} twice: its list is not advancing"
                    ));
                }
                Some(token) => params.continue_token = Some(token),
                None => return Ok(out),
            }
        }
    }

    /// One listing of the configured namespaces.
    pub fn listing(&self) -> Result<(Listing, String), ProviderError> {
        let c = self
            .connection()
            .map_err(|e| ProviderError::inventory(&self.name, e))?;
        let selector = Some(self.config.selector.as_str());
        let namespaces: Vec<Option<&str>> = if self.config.namespaces.is_empty() {
            vec![None]
        } else {
            self.config
                .namespaces
                .iter()
                .map(|n| Some(n.as_str()))
                .collect()
        };
        let mut listing = Listing::default();
        let result = (|| {
            for ns in &namespaces {
                listing
                    .pods
                    .extend(self.list_all::<Pod>(&c.client, *ns, selector, &c.server)?);
                listing
                    .replica_sets
                    .extend(self.list_all::<ReplicaSet>(&c.client, *ns, None, &c.server)?);
            }
            listing.nodes = self.list_nodes(&c.client, &c.server)?;
            Ok::<(), String>(())
        })();
        if let Err(e) = result {
            self.api.forget();
            return Err(ProviderError::inventory(&self.name, e));
        }
        Ok((listing, c.account))
    }
}

impl KubernetesProvider {
    /// An API call about `instance_id` in `namespace` that failed: the connection is
    /// forgotten (the next call connects again), and the error names the server, the verb and
    /// the resource.
    fn api_failure(
        &self,
        c: &Connection,
        instance_id: &str,
        namespace: &str,
        e: &kube::Error,
        verb: &str,
        resource: &str,
    ) -> ProviderError {
        self.api.forget();
        ProviderError::Action {
            provider: self.name.clone(),
            instance_id: instance_id.to_string(),
            message: api_error(e, &c.server, verb, resource, Some(namespace)),
        }
    }

    /// (namespace, name, UID) of the pod `instance` names; refused when it names none.
    fn pod_id<'a>(
        &self,
        instance: &'a Instance,
    ) -> Result<(&'a str, &'a str, &'a str), ProviderError> {
        fleet::parse_id(&instance.id).ok_or_else(|| {
            ProviderError::refused(&self.name, instance, "not a pod id (NAMESPACE/NAME/UID)")
        })
    }

    /// The pod `instance` names, read again, if it still runs and may be touched: `Ok(None)`
    /// when it is gone, replaced (another UID), terminating or not running; refused when it is
    /// Simian's own pod or no longer carries the app (or the selector).
    fn checked_pod(
        &self,
        c: &Connection,
        instance: &Instance,
    ) -> Result<Option<Pod>, ProviderError> {
        let (namespace, name, uid) = self.pod_id(instance)?;
        if self.own_pod.as_ref() == Some(&(namespace.to_string(), name.to_string())) {
            return Err(ProviderError::refused(
                &self.name,
                instance,
                "this is the pod Simian runs in",
            ));
        }
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), namespace);
        let fail = |e: &kube::Error, verb: &str, resource: &str| {
            self.api_failure(c, &instance.id, namespace, e, verb, resource)
        };
        // Re-read: the same pod, still opted in, still running.
        let pod = match self.api.call(pods.get_opt(name)) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(None),
            Err(e) => return Err(fail(&e, "get", "pods")),
        };
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if pod.metadata.uid.as_deref() != Some(uid)
            || pod.metadata.deletion_timestamp.is_some()
            || !running
        {
            return Ok(None);
        }
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        if labels.get(&self.config.app_label).map(String::as_str) != Some(instance.app.as_str()) {
            return Err(ProviderError::refused(
                &self.name,
                instance,
                format!(
                    "the pod no longer carries {}={}",
                    self.config.app_label, instance.app
                ),
            ));
        }
        if !self.config.selector.matches(&labels) {
            return Err(ProviderError::refused(
                &self.name,
                instance,
                format!(
                    "the pod no longer matches the selector {:?}",
                    self.config.selector.as_str()
                ),
            ));
        }
        Ok(Some(pod))
    }

    /// Cuts the pod off the network: a deny-all NetworkPolicy selecting the label
    /// `simian.io/isolated=LEASE`, then that label on the pod; both verified.
    fn isolate(&self, instance: &Instance, lease: &Lease) -> Result<FaultOutcome, ProviderError> {
        let (namespace, name, _) = self.pod_id(instance)?;
        let c = self
            .connection()
            .map_err(|e| ProviderError::action(&self.name, instance, e))?;
        if self.checked_pod(&c, instance)?.is_none() {
            return Ok(FaultOutcome::AlreadyGone);
        }
        let started = Instant::now();
        let fail = |e: &kube::Error, verb: &str, resource: &str| {
            self.api_failure(&c, &instance.id, namespace, e, verb, resource)
        };
        let policies: Api<NetworkPolicy> = Api::namespaced(c.client.clone(), namespace);
        match self
            .api
            .call(policies.create(&PostParams::default(), &isolation_policy(lease)))
        {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(409) => {}
            Err(e) => return Err(fail(&e, "create", "networkpolicies")),
        }
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), namespace);
        let patch =
            serde_json::json!({"metadata": {"labels": {ISOLATED_LABEL: lease.id.to_string()}}});
        match self
            .api
            .call(pods.patch(name, &PatchParams::default(), &Patch::Merge(&patch)))
        {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(404) => return Ok(FaultOutcome::AlreadyGone),
            Err(e) => return Err(fail(&e, "patch", "pods")),
        }
        let labelled = match self.api.call(pods.get_opt(name)) {
            Ok(Some(p)) => {
                p.metadata.labels.unwrap_or_default().get(ISOLATED_LABEL)
                    == Some(&lease.id.to_string())
            }
            Ok(None) => return Ok(FaultOutcome::AlreadyGone),
            Err(e) => return Err(fail(&e, "get", "pods")),
        };
        let policy = self
            .api
            .call(policies.get_opt(&policy_name(lease)))
            .map_err(|e| fail(&e, "get", "networkpolicies"))?;
        if !labelled || policy.is_none() {
            return Err(ProviderError::action(
                &self.name,
                instance,
                "the isolation policy and label were written, but reading them back does not show them",
            ));
        }
        Ok(FaultOutcome::Made {
            detail: format!(
                "isolated by NetworkPolicy {namespace}/{} (deny all ingress and egress), verified after {} ms",
                policy_name(lease),
                started.elapsed().as_millis()
            ),
        })
    }

    /// Removes the pod's isolation label and the policy, and verifies both are gone.
    fn reconnect(&self, lease: &Lease) -> Result<String, ProviderError> {
        let failed = |message: String| ProviderError::Action {
            provider: self.name.clone(),
            instance_id: lease.instance_id.clone(),
            message,
        };
        let Some((namespace, name, uid)) = fleet::parse_id(&lease.instance_id) else {
            return Err(failed("not a pod id (NAMESPACE/NAME/UID)".into()));
        };
        let c = self.connection().map_err(failed)?;
        let fail = |e: &kube::Error, verb: &str, resource: &str| {
            self.api_failure(&c, &lease.instance_id, namespace, e, verb, resource)
        };
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), namespace);
        let policies: Api<NetworkPolicy> = Api::namespaced(c.client.clone(), namespace);
        let mut notes = Vec::new();
        // Whether the same pod (same UID) carries the isolation label (`None`: it is gone),
        // and whether the lease's policy exists.
        let look = || -> Result<(Option<bool>, bool), ProviderError> {
            let labelled = match self.api.call(pods.get_opt(name)) {
                Ok(Some(p)) if p.metadata.uid.as_deref() == Some(uid) => Some(
                    p.metadata
                        .labels
                        .unwrap_or_default()
                        .contains_key(ISOLATED_LABEL),
                ),
                Ok(_) => None,
                Err(e) => return Err(fail(&e, "get", "pods")),
            };
            let policy = self
                .api
                .call(policies.get_opt(&policy_name(lease)))
                .map_err(|e| fail(&e, "get", "networkpolicies"))?;
            Ok((labelled, policy.is_some()))
        };
        let (labelled, policy) = look()?;
        if labelled != Some(true) && !policy {
            return Ok(match labelled {
                None => "nothing to undo: the pod is gone".into(),
                Some(_) => "nothing to undo: the pod is not isolated".into(),
            });
        }
        match labelled {
            Some(true) => {
                let patch = serde_json::json!({"metadata": {"labels": {ISOLATED_LABEL: null}}});
                match self.api.call(pods.patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )) {
                    Ok(_) => notes.push(format!("label removed from {namespace}/{name}")),
                    Err(e) if status_code(&e) == Some(404) => notes.push("the pod is gone".into()),
                    Err(e) => return Err(fail(&e, "patch", "pods")),
                }
            }
            Some(false) => {}
            None => notes.push("the pod is gone".into()),
        }
        match self
            .api
            .call(policies.delete(&policy_name(lease), &DeleteParams::default()))
        {
            Ok(_) => notes.push(format!("NetworkPolicy {} deleted", policy_name(lease))),
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => return Err(fail(&e, "delete", "networkpolicies")),
        }
        let (labelled, policy_left) = look()?;
        let still_labelled = labelled == Some(true);
        if still_labelled || policy_left {
            return Err(failed(
                "the isolation was removed, but reading back still shows it".into(),
            ));
        }
        let held = jiff::Timestamp::now().duration_since(lease.created_at);
        Ok(format!(
            "reconnected (verified) after {:.1} s isolated: {}",
            held.as_secs_f64(),
            notes.join(", ")
        ))
    }
}

/// The label that ties an isolated pod to its lease's NetworkPolicy.
pub const ISOLATED_LABEL: &str = "simian.io/isolated";

/// The NetworkPolicy of `lease`.
fn policy_name(lease: &Lease) -> String {
    format!("simian-isolate-{}", lease.id)
}

/// A policy that selects the pods labelled with `lease`'s id and allows them nothing.
fn isolation_policy(lease: &Lease) -> NetworkPolicy {
    let id = lease.id.to_string();
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(policy_name(lease)),
            labels: Some(
                [
                    (
                        "app.kubernetes.io/managed-by".to_string(),
                        "simian".to_string(),
                    ),
                    ("simian.io/lease".to_string(), id.clone()),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some([(ISOLATED_LABEL.to_string(), id)].into()),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: None,
            egress: None,
        }),
    }
}

/// Connects as the configuration says.
async fn connect(config: &KubernetesConfig) -> Result<Connection, String> {
    let options = KubeConfigOptions {
        context: config.context.clone(),
        ..KubeConfigOptions::default()
    };
    let (kube_config, context) = match &config.kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(|e| {
                format!(
                    "cannot read the kubeconfig {}: {e}; fix kubeconfig in the provider's config",
                    path.display()
                )
            })?;
            let context = config.context.clone().or(file.current_context.clone());
            let c = Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
            (c, context)
        }
        None if config.context.is_some()
            || std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() =>
        {
            let context = config
                .context
                .clone()
                .or_else(|| Kubeconfig::read().ok().and_then(|k| k.current_context));
            let c = Config::from_kubeconfig(&options).await.map_err(|e| {
                format!("no usable kubeconfig ($KUBECONFIG or ~/.kube/config): {e}; set kubeconfig in the provider's config")
            })?;
            (c, context)
        }
        None => (
            Config::incluster()
                .map_err(|e| format!("cannot use the in-cluster service account: {e}"))?,
            Some("in-cluster".to_string()),
        ),
    };
    let mut kube_config = kube_config;
    // A 429 is an answer here (a disruption budget refuses the eviction), not a reason to
    // wait and ask again; the daemon has its own retries for the rest.
    kube_config.default_retry = false;
    let server = kube_config.cluster_url.to_string();
    let account = config
        .account
        .clone()
        .or(context)
        .unwrap_or_else(|| "kubernetes".to_string());
    let client = Client::try_from(kube_config)
        .map_err(|e| format!("cannot make a client for {server}: {e}"))?;
    Ok(Connection {
        client,
        account,
        server,
    })
}

fn plural<K: kube::Resource>() -> String
where
    K::DynamicType: Default,
{
    K::plural(&K::DynamicType::default()).to_string()
}

/// An API failure said so that the reader knows what to do: the server, the namespace and
/// the verb that was refused.
fn api_error(
    e: &kube::Error,
    server: &str,
    verb: &str,
    resource: &str,
    namespace: Option<&str>,
) -> String {
    let place = namespace.map_or_else(
        || "cluster-wide".to_string(),
        |n| format!("in namespace {n}"),
    );
    match e {
        kube::Error::Api(status) if status.code == 403 => format!(
            "forbidden: cannot {verb} {resource} {place} on {server}: add this rule to the Role or ClusterRole of Simian's service account (deploy/kubernetes/ has one)"
        ),
        kube::Error::Api(status) if status.code == 401 => format!(
            "unauthorized at {server}: the credentials of the kubeconfig context are missing or expired"
        ),
        kube::Error::Api(status) => format!(
            "{verb} {resource} {place} on {server}: {} ({})",
            status.message, status.code
        ),
        other => format!(
            "cannot reach the Kubernetes API at {server} to {verb} {resource} {place}: {other}"
        ),
    }
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

impl Provider for KubernetesProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn instances(&self) -> Result<Vec<Instance>, ProviderError> {
        let (listing, account) = self.listing()?;
        let now = jiff::Timestamp::now().as_second();
        let (mut instances, skipped) = fleet::instances(&listing, &self.rules(&account), now);
        if let Some((namespace, name)) = &self.own_pod {
            let own = format!("{namespace}/{name}/");
            instances.retain(|i| !i.id.starts_with(own.as_str()));
        }
        for s in &skipped {
            tracing::debug!(provider = %self.name, pod = %s.pod, reason = %s.reason, "pod not eligible");
        }
        Ok(instances)
    }

    fn faults(&self) -> &'static [FaultKind] {
        &[FaultKind::Isolate]
    }

    fn make_fault(
        &self,
        instance: &Instance,
        lease: &Lease,
    ) -> Result<FaultOutcome, ProviderError> {
        match lease.kind {
            FaultKind::Isolate => self.isolate(instance, lease),
            other => Err(ProviderError::refused(
                &self.name,
                instance,
                format!("a kubernetes provider cannot {other} a pod"),
            )),
        }
    }

    fn undo(&self, lease: &Lease) -> Result<String, ProviderError> {
        match lease.kind {
            FaultKind::Isolate => self.reconnect(lease),
            other => Err(ProviderError::Refused {
                provider: self.name.clone(),
                instance_id: lease.instance_id.clone(),
                reason: format!("a kubernetes provider makes no {other} faults"),
            }),
        }
    }

    fn terminate(
        &self,
        instance: &Instance,
        termination: i64,
    ) -> Result<KillOutcome, ProviderError> {
        let (namespace, name, uid) = self.pod_id(instance)?;
        let c = self
            .connection()
            .map_err(|e| ProviderError::action(&self.name, instance, e))?;
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), namespace);
        let fail = |e: &kube::Error, verb: &str, resource: &str| {
            self.api_failure(&c, &instance.id, namespace, e, verb, resource)
        };
        let Some(pod) = self.checked_pod(&c, instance)? else {
            return Ok(KillOutcome::AlreadyGone);
        };
        // Never the only ready replica, unless the app allows it: counted now, not at listing.
        if !self
            .config
            .single_replica_apps
            .contains(instance.app.as_str())
        {
            let siblings = self
                .list_all::<Pod>(
                    &c.client,
                    Some(namespace),
                    Some(self.config.selector.as_str()),
                    &c.server,
                )
                .map_err(|e| ProviderError::action(&self.name, instance, e))?;
            let replica_sets = self
                .list_all::<ReplicaSet>(&c.client, Some(namespace), None, &c.server)
                .map_err(|e| ProviderError::action(&self.name, instance, e))?;
            let index = fleet::replica_set_index(&replica_sets);
            let cluster = fleet::cluster_of(&pod, &index);
            let ready = siblings
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none() && fleet::running_and_ready(p))
                .filter(|p| fleet::cluster_of(p, &index) == cluster)
                .count();
            if ready < 2 {
                return Err(ProviderError::refused(
                    &self.name,
                    instance,
                    format!(
                        "the only ready replica of {cluster}: set allow_single_replica = true in [apps.{}] to allow it",
                        instance.app
                    ),
                ));
            }
        }
        let grace = self
            .config
            .grace_period
            .map(|g| g.as_secs().min(u32::MAX as u64) as u32);
        let delete_params = DeleteParams {
            grace_period_seconds: grace,
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let started = Instant::now();
        let acted = match self.config.action {
            KubernetesAction::Evict => self
                .api
                .call(pods.evict(
                    name,
                    &EvictParams {
                        delete_options: Some(delete_params),
                        post_options: PostParams::default(),
                    },
                ))
                .map(|_| ()),
            KubernetesAction::Delete => {
                self.api.call(pods.delete(name, &delete_params)).map(|_| ())
            }
        };
        match acted {
            Ok(()) => {}
            Err(e) if status_code(&e) == Some(404) => return Ok(KillOutcome::AlreadyGone),
            // A UID precondition that no longer holds: the name belongs to another pod now.
            Err(e) if status_code(&e) == Some(409) => return Ok(KillOutcome::AlreadyGone),
            Err(kube::Error::Api(status)) if status.code == 429 => {
                return Ok(KillOutcome::Refused {
                    check: Check::DisruptionBudget,
                    reason: format!(
                        "evicting {namespace}/{name} would violate a PodDisruptionBudget: {}",
                        budget_message(&status)
                    ),
                });
            }
            Err(e) => {
                let resource = match self.config.action {
                    KubernetesAction::Evict => "pods/eviction",
                    KubernetesAction::Delete => "pods",
                };
                let verb = match self.config.action {
                    KubernetesAction::Evict => "create",
                    KubernetesAction::Delete => "delete",
                };
                return Err(fail(&e, verb, resource));
            }
        }
        // Verified: the pod with that UID is gone or terminating.
        let deadline = started + self.config.verify_timeout;
        loop {
            match self.api.call(pods.get_opt(name)) {
                Ok(None) => break,
                Ok(Some(p))
                    if p.metadata.uid.as_deref() != Some(uid)
                        || p.metadata.deletion_timestamp.is_some() =>
                {
                    break;
                }
                Ok(Some(_)) if Instant::now() >= deadline => {
                    return Err(ProviderError::action(
                        &self.name,
                        instance,
                        format!(
                            "the pod still runs {} s after the {}",
                            self.config.verify_timeout.as_secs(),
                            self.config.action.as_str()
                        ),
                    ));
                }
                Ok(Some(_)) => std::thread::sleep(Duration::from_millis(100)),
                Err(e) => return Err(fail(&e, "get", "pods")),
            }
        }
        let elapsed = started.elapsed();
        let event_note = match self.write_event(&c, &pod, instance, termination) {
            Ok(()) => String::new(),
            Err(e) => {
                tracing::warn!(pod = %instance.id, error = %e, "the pod was killed, but its Event could not be written");
                format!("; no Event: {e}")
            }
        };
        Ok(KillOutcome::Killed {
            detail: format!(
                "{} {namespace}/{name}; gone or terminating after {} ms{event_note}",
                match self.config.action {
                    KubernetesAction::Evict => "evicted",
                    KubernetesAction::Delete => "deleted",
                },
                elapsed.as_millis()
            ),
        })
    }
}

impl KubernetesProvider {
    /// Writes an Event on the killed pod, so that `kubectl describe pod` says why it died.
    fn write_event(
        &self,
        c: &Connection,
        pod: &Pod,
        instance: &Instance,
        termination: i64,
    ) -> Result<(), String> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let now = Time(jiff::Timestamp::now());
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{name}.simian.")),
                name: Some(format!("{name}.simian.{}", now.0.as_millisecond())),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                uid: pod.metadata.uid.clone(),
                ..ObjectReference::default()
            },
            reason: Some("SimianTermination".into()),
            message: Some(format!(
                "Simian termination {termination} (provider {}) {} this pod of app {} (cluster {}): see simian history",
                self.name,
                match self.config.action {
                    KubernetesAction::Evict => "evicted",
                    KubernetesAction::Delete => "deleted",
                },
                instance.app,
                instance.cluster
            )),
            type_: Some("Warning".into()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            source: Some(EventSource {
                component: Some("simian".into()),
                host: None,
            }),
            ..Event::default()
        };
        let events: Api<Event> = Api::namespaced(c.client.clone(), &namespace);
        self.api
            .call(events.create(&PostParams::default(), &event))
            .map(|_| ())
            .map_err(|e| api_error(&e, &c.server, "create", "events", Some(&namespace)))
    }
}

/// The budget's name and state from a 429 answer, as the API server words it.
fn budget_message(status: &kube::core::Status) -> String {
    let causes: Vec<String> = status
        .details
        .as_ref()
        .map(|d| {
            d.causes
                .iter()
                .map(|c| c.message.clone())
                .filter(|m| !m.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if causes.is_empty() {
        status.message.clone()
    } else {
        format!("{} ({})", status.message, causes.join("; "))
    }
}
