//! The unit that can be killed, and the Netflix naming convention that names its cluster.
//!
//! A cluster is `app-stack-detail` (Frigga): the app is everything before the first dash, the
//! stack what lies between the first and second dash, the detail the rest. Providers may give
//! a cluster explicitly; [`Instance::normalize`] fills in whichever side is missing so that
//! grouping and exceptions always see both.

use serde::{Deserialize, Serialize};

use crate::{Labels, Name};

/// Cluster name suffixes that are never eligible for a kill (as in Chaos Monkey 2).
pub const NEVER_ELIGIBLE_SUFFIXES: [&str; 4] = ["-canary", "-baseline", "-citrus", "-citrusproxy"];

/// True when `cluster` ends with one of [`NEVER_ELIGIBLE_SUFFIXES`].
pub fn is_never_eligible_cluster(cluster: &str) -> bool {
    NEVER_ELIGIBLE_SUFFIXES
        .iter()
        .any(|suffix| cluster.ends_with(suffix))
}

/// One killable thing: a process, a container, an EC2 instance, a pod.
///
/// Its text fields are shared [`Name`]s, so that a fleet repeating the same app, account,
/// region, zone, cluster or label set stores each once (see [`crate::name`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Instance {
    /// Provider-specific identity, stable for the life of the instance.
    pub id: Name,
    /// Application name.
    pub app: Name,
    /// Account (a cloud account, a cluster, `local`).
    pub account: Name,
    /// Region.
    pub region: Name,
    /// Availability zone; empty when the provider has none.
    pub zone: Name,
    /// Stack, the second part of the cluster name; may be empty.
    pub stack: Name,
    /// Detail, the third part of the cluster name; may be empty.
    pub detail: Name,
    /// Cluster name, `app-stack-detail` unless the provider gives it.
    pub cluster: Name,
    /// Free-form labels (always present in JSON, `{}` when there are none).
    #[serde(default)]
    pub labels: Labels,
}

impl Instance {
    /// Starts building an instance with the two fields every instance has.
    pub fn builder(id: impl Into<Name>, app: impl Into<Name>) -> InstanceBuilder {
        InstanceBuilder {
            instance: Instance {
                id: id.into(),
                app: app.into(),
                account: "local".into(),
                region: "local".into(),
                ..Instance::default()
            },
        }
    }

    /// Fills in the cluster from app, stack and detail, or stack and detail from the cluster,
    /// whichever is missing.
    pub fn normalize(&mut self) {
        if self.cluster.is_empty() {
            self.cluster = ClusterName::join(&self.app, &self.stack, &self.detail).into();
        } else if self.stack.is_empty() && self.detail.is_empty() {
            let parsed = ClusterName::parse(&self.cluster);
            self.stack = parsed.stack.into();
            self.detail = parsed.detail.into();
        }
    }
}

impl Instance {
    /// The first field or label of this instance that holds a control character (`id`, `app`,
    /// ..., `label team`), if any. Such a value, printed to a terminal, could move the cursor
    /// or rewrite what the operator sees; providers refuse or skip the instance instead.
    pub fn field_with_control_character(&self) -> Option<String> {
        let has = |v: &str| v.chars().any(char::is_control);
        let fields = [
            ("id", &self.id),
            ("app", &self.app),
            ("account", &self.account),
            ("region", &self.region),
            ("zone", &self.zone),
            ("stack", &self.stack),
            ("detail", &self.detail),
            ("cluster", &self.cluster),
        ];
        if let Some((name, _)) = fields.iter().find(|(_, v)| has(v)) {
            return Some((*name).to_string());
        }
        self.labels
            .iter()
            .find(|(k, v)| has(k) || has(v))
            .map(|(k, _)| format!("label {k:?}"))
    }
}

/// Builder for [`Instance`], mostly for tests and inventories.
#[derive(Debug, Clone)]
pub struct InstanceBuilder {
    instance: Instance,
}

macro_rules! setter {
    ($($field:ident),*) => {$(
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        pub fn $field(mut self, value: impl Into<Name>) -> Self {
            self.instance.$field = value.into();
            self
        }
    )*};
}

impl InstanceBuilder {
    setter!(account, region, zone, stack, detail, cluster);

    /// Adds a label.
    pub fn label(mut self, key: impl Into<Name>, value: impl Into<Name>) -> Self {
        self.instance.labels = self.instance.labels.with(key, value);
        self
    }

    /// Finishes the instance, deriving the cluster name or its parts.
    pub fn build(mut self) -> Instance {
        self.instance.normalize();
        self.instance
    }
}

/// The parts of a cluster name under the Netflix (Frigga) convention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterName {
    /// Everything before the first dash.
    pub app: String,
    /// Between the first and the second dash.
    pub stack: String,
    /// Everything after the second dash.
    pub detail: String,
}

impl ClusterName {
    /// Parses `app-stack-detail`, dropping a server group's push suffix (`-v123`) first.
    pub fn parse(name: &str) -> ClusterName {
        let name = strip_push_suffix(name);
        let mut parts = name.splitn(3, '-');
        ClusterName {
            app: parts.next().unwrap_or_default().to_string(),
            stack: parts.next().unwrap_or_default().to_string(),
            detail: parts.next().unwrap_or_default().to_string(),
        }
    }

    /// Joins the parts: `app`, `app-stack`, `app-stack-detail` or `app--detail`.
    pub fn join(app: &str, stack: &str, detail: &str) -> String {
        let mut out = String::new();
        Self::join_into(&mut out, app, stack, detail);
        out
    }

    /// [`join`](Self::join) into `out` (cleared first), for callers that reuse one buffer.
    pub fn join_into(out: &mut String, app: &str, stack: &str, detail: &str) {
        out.clear();
        out.push_str(app);
        match (stack.is_empty(), detail.is_empty()) {
            (true, true) => {}
            (false, true) => {
                out.push('-');
                out.push_str(stack);
            }
            _ => {
                out.push('-');
                out.push_str(stack);
                out.push('-');
                out.push_str(detail);
            }
        }
    }
}

fn strip_push_suffix(name: &str) -> &str {
    if let Some(pos) = name.rfind("-v") {
        let digits = &name[pos + 2..];
        if digits.len() >= 3 && digits.bytes().all(|b| b.is_ascii_digit()) {
            return &name[..pos];
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_round_trip() {
        let cases = [
            ("app", "", "", "app"),
            ("app", "prod", "", "app-prod"),
            ("app", "prod", "east", "app-prod-east"),
            ("app", "", "east", "app--east"),
            ("app", "prod", "a-b", "app-prod-a-b"),
        ];
        for (app, stack, detail, cluster) in cases {
            assert_eq!(ClusterName::join(app, stack, detail), cluster);
            let parsed = ClusterName::parse(cluster);
            assert_eq!(
                (
                    parsed.app.as_str(),
                    parsed.stack.as_str(),
                    parsed.detail.as_str()
                ),
                (app, stack, detail)
            );
        }
    }

    #[test]
    fn push_suffix_is_dropped() {
        assert_eq!(ClusterName::parse("app-prod-v012").stack, "prod");
        assert_eq!(ClusterName::parse("app-prod-v012").detail, "");
        assert_eq!(ClusterName::parse("app-prod-vip").detail, "vip");
    }

    #[test]
    fn normalize_fills_either_side() {
        let a = Instance::builder("1", "web")
            .cluster("web-prod-east")
            .build();
        assert_eq!((a.stack.as_str(), a.detail.as_str()), ("prod", "east"));
        let b = Instance::builder("1", "web").stack("prod").build();
        assert_eq!(b.cluster, "web-prod");
    }

    #[test]
    fn control_characters_are_found_in_any_field_or_label() {
        let clean = Instance::builder("i-1", "web")
            .label("team", "core")
            .build();
        assert_eq!(clean.field_with_control_character(), None);
        let id = Instance::builder("i-\u{1b}[2J", "web").build();
        assert_eq!(id.field_with_control_character().as_deref(), Some("id"));
        let label = Instance::builder("i-1", "web")
            .label("team", "a\u{7}")
            .build();
        assert_eq!(
            label.field_with_control_character().as_deref(),
            Some("label \"team\"")
        );
    }

    #[test]
    fn never_eligible_suffixes() {
        assert!(is_never_eligible_cluster("web-prod-canary"));
        assert!(is_never_eligible_cluster("web-citrusproxy"));
        assert!(!is_never_eligible_cluster("web-canaryish"));
    }
}
