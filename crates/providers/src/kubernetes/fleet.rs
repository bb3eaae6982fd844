//! From listed pods, replica sets and nodes to instances: the provider's decisions, kept
//! free of I/O so that every rule is tested on plain values.
//!
//! - **Opt-in.** A pod is an instance only when it carries the app label (`simian.io/app`,
//!   or the configured `app_label`).
//! - **Ownership.** Its cluster is its owning workload: a Deployment (through the pod's
//!   ReplicaSet), a StatefulSet, a DaemonSet, a ReplicaSet of its own, or the bare pod, as
//!   `NAMESPACE/Kind/name`, unless `simian.io/cluster` names one.
//! - **Place.** Zone and region come from the node's `topology.kubernetes.io/*` labels.
//! - **Eligibility.** Running and Ready, not terminating, at least `minimum_age` old, and
//!   in a workload with more than one ready replica (unless the app allows a single one).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use simian_core::{Instance, Labels, Name};

use super::selector::Selector;

/// The labels Simian reads on pods and nodes.
pub mod label {
    /// The app, by default (opts the pod in).
    pub const APP: &str = "simian.io/app";
    /// The stack.
    pub const STACK: &str = "simian.io/stack";
    /// The detail.
    pub const DETAIL: &str = "simian.io/detail";
    /// An explicit cluster, instead of the owning workload.
    pub const CLUSTER: &str = "simian.io/cluster";
    /// A node's zone.
    pub const ZONE: &str = "topology.kubernetes.io/zone";
    /// A node's region.
    pub const REGION: &str = "topology.kubernetes.io/region";
}

/// What the decisions depend on besides the listing.
#[derive(Clone, Debug)]
pub struct Rules {
    /// The label that names the app.
    pub app_label: String,
    /// The account every instance gets.
    pub account: String,
    /// Pods younger than this are not eligible.
    pub minimum_age: Duration,
    /// Apps whose only ready replica may be killed.
    pub single_replica_apps: BTreeSet<String>,
    /// Only pods whose labels match.
    pub selector: Selector,
    /// Namespaces never touched (`kube-system` when none are configured).
    pub excluded_namespaces: BTreeSet<String>,
}

/// One listing of the cluster.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// Pods of the configured namespaces.
    pub pods: Vec<Pod>,
    /// Their replica sets, to find the Deployment that owns each.
    pub replica_sets: Vec<ReplicaSet>,
    /// Every node, for zones and regions.
    pub nodes: Vec<Node>,
}

/// A pod that is not an instance, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// `NAMESPACE/NAME`.
    pub pod: String,
    /// Why.
    pub reason: String,
}

/// The owning workload of a pod: (kind, name).
pub fn workload(
    pod: &Pod,
    replica_sets: &HashMap<(String, String), &ReplicaSet>,
) -> (String, String) {
    let meta = &pod.metadata;
    let namespace = meta.namespace.clone().unwrap_or_default();
    let Some(owner) = controller(&meta.owner_references) else {
        return ("Pod".into(), meta.name.clone().unwrap_or_default());
    };
    if owner.0 == "ReplicaSet"
        && let Some(rs) = replica_sets.get(&(namespace, owner.1.clone()))
        && let Some(deployment) = controller(&rs.metadata.owner_references)
    {
        return deployment;
    }
    owner
}

fn controller(
    owners: &Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
) -> Option<(String, String)> {
    owners
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| (o.kind.clone(), o.name.clone()))
}

/// Whether the pod runs and is Ready.
pub fn running_and_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// `NAMESPACE/Kind/name`, or what `simian.io/cluster` says.
pub fn cluster_of(pod: &Pod, replica_sets: &HashMap<(String, String), &ReplicaSet>) -> String {
    if let Some(explicit) = labels(&pod.metadata)
        .get(label::CLUSTER)
        .filter(|c| !c.is_empty())
    {
        return explicit.clone();
    }
    let (kind, name) = workload(pod, replica_sets);
    format!(
        "{}/{kind}/{name}",
        pod.metadata.namespace.as_deref().unwrap_or_default()
    )
}

/// The instance id of a pod: `NAMESPACE/NAME/UID`, so that a pod recreated under the same
/// name is never taken for the one drawn.
pub fn instance_id(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
        meta.uid.as_deref().unwrap_or_default()
    )
}

/// (namespace, name, uid) of an instance id.
pub fn parse_id(id: &str) -> Option<(&str, &str, &str)> {
    let mut parts = id.splitn(3, '/');
    let (ns, name, uid) = (parts.next()?, parts.next()?, parts.next()?);
    (!ns.is_empty() && !name.is_empty() && !uid.is_empty()).then_some((ns, name, uid))
}

fn labels(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

/// The replica sets of a listing by (namespace, name).
pub fn replica_set_index(replica_sets: &[ReplicaSet]) -> HashMap<(String, String), &ReplicaSet> {
    replica_sets
        .iter()
        .map(|rs| {
            (
                (
                    rs.metadata.namespace.clone().unwrap_or_default(),
                    rs.metadata.name.clone().unwrap_or_default(),
                ),
                rs,
            )
        })
        .collect()
}

/// The instances of a listing at `now` (seconds since the epoch), and the opted-in pods that
/// are not, with the reason.
pub fn instances(listing: &Listing, rules: &Rules, now: i64) -> (Vec<Instance>, Vec<Skipped>) {
    let replica_sets = replica_set_index(&listing.replica_sets);
    let nodes: HashMap<&str, BTreeMap<String, String>> = listing
        .nodes
        .iter()
        .filter_map(|n| Some((n.metadata.name.as_deref()?, labels(&n.metadata))))
        .collect();
    // Ready replicas per cluster, over every opted-in pod.
    let mut ready: HashMap<String, usize> = HashMap::new();
    let opted_in: Vec<&Pod> = listing
        .pods
        .iter()
        .filter(|p| {
            let l = labels(&p.metadata);
            l.get(&rules.app_label)
                .is_some_and(|a| !a.trim().is_empty())
                && rules.selector.matches(&l)
        })
        .collect();
    for pod in &opted_in {
        if running_and_ready(pod) && pod.metadata.deletion_timestamp.is_none() {
            *ready.entry(cluster_of(pod, &replica_sets)).or_default() += 1;
        }
    }
    let (mut out, mut skipped) = (Vec::new(), Vec::new());
    for pod in opted_in {
        let meta = &pod.metadata;
        let namespace = meta.namespace.clone().unwrap_or_default();
        let where_ = format!("{namespace}/{}", meta.name.as_deref().unwrap_or_default());
        let mut skip = |reason: String| {
            skipped.push(Skipped {
                pod: where_.clone(),
                reason,
            })
        };
        let l = labels(meta);
        let app = l.get(&rules.app_label).cloned().unwrap_or_default();
        if rules.excluded_namespaces.contains(&namespace) {
            skip(format!("namespace {namespace} is never touched"));
            continue;
        }
        if meta.deletion_timestamp.is_some() {
            skip("terminating".into());
            continue;
        }
        if !running_and_ready(pod) {
            skip("not Running and Ready".into());
            continue;
        }
        let age = meta
            .creation_timestamp
            .as_ref()
            .map_or(0, |t| now.saturating_sub(t.0.as_second()));
        if age < rules.minimum_age.as_secs() as i64 {
            skip(format!(
                "{age}s old, younger than minimum_age ({}s)",
                rules.minimum_age.as_secs()
            ));
            continue;
        }
        let cluster = cluster_of(pod, &replica_sets);
        let replicas = ready.get(&cluster).copied().unwrap_or(0);
        if replicas < 2 && !rules.single_replica_apps.contains(&app) {
            skip(format!(
                "the only ready replica of {cluster} (set allow_single_replica = true for app {app} to allow it)"
            ));
            continue;
        }
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| nodes.get(n));
        let place = |k: &str| node.and_then(|n| n.get(k)).cloned().unwrap_or_default();
        let own = [
            rules.app_label.as_str(),
            label::STACK,
            label::DETAIL,
            label::CLUSTER,
        ];
        // The cluster is the workload, never split into a stack and detail by its dashes.
        let instance = Instance {
            id: Name::from(instance_id(meta).as_str()),
            app: Name::from(app.as_str()),
            account: Name::from(rules.account.as_str()),
            region: Name::from(place(label::REGION).as_str()),
            zone: Name::from(place(label::ZONE).as_str()),
            stack: Name::from(l.get(label::STACK).map_or("", |s| s.as_str())),
            detail: Name::from(l.get(label::DETAIL).map_or("", |s| s.as_str())),
            cluster: Name::from(cluster.as_str()),
            labels: l
                .iter()
                .filter(|(k, _)| !own.contains(&k.as_str()))
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Labels>(),
        };
        if let Some(field) = instance.field_with_control_character() {
            skip(format!("{field} holds a control character"));
            continue;
        }
        out.push(instance);
    }
    (out, skipped)
}
