//! Auto Scaling groups to instances: the pure decisions of the AWS provider.
//!
//! Everything here works on plain views of what the Auto Scaling API answered ([`Group`],
//! [`Member`]), so the naming, the opt-in and the eligibility rules are tested without a
//! network, and benchmarked on fleets of any size.
//!
//! - **Names as Netflix named them.** A group named `app-stack-detail[-vNNN]` (Frigga) gives
//!   app, stack, detail and cluster, the push suffix dropped so that every version of a
//!   cluster is one group for the schedule. A group tagged with the opt-in tag
//!   (`simian:app`) takes its app from the tag, and its stack, detail and cluster from
//!   `simian:stack`, `simian:detail` and `simian:cluster` when present.
//! - **Opt-in by configuration.** Only groups whose app is a configured app of this provider
//!   give instances: a configured name matches the tag, or else the parsed name.
//! - **Eligible** instances are `InService` and `Healthy`, in a group whose `Terminate`
//!   process is not suspended (the group could not replace them) and that has more than one
//!   such instance (unless the app allows a single one).

use std::collections::BTreeSet;

use simian_core::{ClusterName, Instance, Labels, Name};

/// The tag that opts a group in, when none is configured.
pub const DEFAULT_OPT_IN_TAG: &str = "simian:app";

/// The tags that describe a tagged group further.
pub const STACK_TAG: &str = "simian:stack";
/// See [`STACK_TAG`].
pub const DETAIL_TAG: &str = "simian:detail";
/// See [`STACK_TAG`].
pub const CLUSTER_TAG: &str = "simian:cluster";

/// The label every instance carries with the name of its Auto Scaling group.
pub const GROUP_LABEL: &str = "asg";

/// One Auto Scaling group, as listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Group {
    /// Its name.
    pub name: String,
    /// The region it was listed in.
    pub region: String,
    /// Its tags, in the order listed.
    pub tags: Vec<(String, String)>,
    /// The names of its suspended processes (`Terminate`, `Launch`, ...).
    pub suspended: Vec<String>,
    /// Its instances.
    pub members: Vec<Member>,
}

/// One instance of a group, as listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    /// The EC2 instance id (`i-...`).
    pub id: String,
    /// Its Availability Zone.
    pub zone: String,
    /// `Pending`, `InService`, `Standby`, `Terminating`, `Detaching`, ...
    pub lifecycle: String,
    /// `Healthy` or `Unhealthy`.
    pub health: String,
}

impl Member {
    /// In service and healthy: a candidate.
    pub fn serves(&self) -> bool {
        self.lifecycle == "InService" && self.health == "Healthy"
    }

    /// Leaving or left the group: a kill finds it already gone.
    pub fn leaving(&self) -> bool {
        self.lifecycle.starts_with("Terminat") || self.lifecycle.starts_with("Detach")
    }
}

/// What decides which groups count and how they are named.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// The configured apps of this provider.
    pub apps: BTreeSet<String>,
    /// The tag that opts a group in (`simian:app`).
    pub opt_in_tag: String,
    /// The account every instance is in.
    pub account: String,
    /// Apps whose single-instance groups may lose their instance.
    pub single_instance_apps: BTreeSet<String>,
}

/// A group's app, stack, detail and cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The app.
    pub app: String,
    /// The stack.
    pub stack: String,
    /// The detail.
    pub detail: String,
    /// The cluster: `app-stack-detail`, without the push suffix.
    pub cluster: String,
}

/// The group's identity when it belongs to a configured app: by the opt-in tag first, else
/// by its Frigga name.
pub fn identity(group: &Group, rules: &Rules) -> Option<Identity> {
    let tag = |key: &str| {
        group
            .tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    if let Some(app) = tag(&rules.opt_in_tag) {
        if !rules.apps.contains(app) {
            return None;
        }
        let parsed = ClusterName::parse(&group.name);
        let named_after_app = parsed.app == app;
        let stack = tag(STACK_TAG).map(str::to_string).unwrap_or_else(|| {
            if named_after_app {
                parsed.stack.clone()
            } else {
                String::new()
            }
        });
        let detail = tag(DETAIL_TAG).map(str::to_string).unwrap_or_else(|| {
            if named_after_app {
                parsed.detail.clone()
            } else {
                String::new()
            }
        });
        let cluster = match tag(CLUSTER_TAG) {
            Some(c) => c.to_string(),
            // A tagged group whose name says nothing of the app is a cluster of its own.
            None if !named_after_app && stack.is_empty() && detail.is_empty() => group.name.clone(),
            None => ClusterName::join(app, &stack, &detail),
        };
        return Some(Identity {
            app: app.to_string(),
            stack,
            detail,
            cluster,
        });
    }
    let parsed = ClusterName::parse(&group.name);
    if !rules.apps.contains(&parsed.app) {
        return None;
    }
    let cluster = ClusterName::join(&parsed.app, &parsed.stack, &parsed.detail);
    Some(Identity {
        app: parsed.app,
        stack: parsed.stack,
        detail: parsed.detail,
        cluster,
    })
}

/// Why a group's instances may not be killed now, whatever the instance: the `Terminate`
/// process is suspended, or it has a single serving instance the app does not allow to lose.
pub fn group_refusal(group: &Group, app: &str, rules: &Rules) -> Option<String> {
    if group.suspended.iter().any(|p| p == "Terminate") {
        return Some(format!(
            "the Terminate process of Auto Scaling group {} is suspended, so it would not replace the instance: resume it (aws autoscaling resume-processes --scaling-processes Terminate)",
            group.name
        ));
    }
    let serving = group.members.iter().filter(|m| m.serves()).count();
    if serving < 2 && !rules.single_instance_apps.contains(app) {
        let count = if serving == 0 {
            "no instance"
        } else {
            "a single instance"
        };
        return Some(format!(
            "Auto Scaling group {} has {count} in service: set allow_single_replica = true in the [[apps]] entry of {app} to allow its only instance to be killed",
            group.name
        ));
    }
    None
}

/// An instance left out of the listing, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// `GROUP/INSTANCE`.
    pub instance: String,
    /// Why.
    pub reason: String,
}

/// The eligible instances of `groups`, and those of configured apps that were left out.
/// Groups of no configured app are ignored silently.
pub fn instances(groups: &[Group], rules: &Rules) -> (Vec<Instance>, Vec<Skipped>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let account = Name::from(rules.account.as_str());
    for group in groups {
        let Some(identity) = identity(group, rules) else {
            continue;
        };
        let refusal = group_refusal(group, &identity.app, rules);
        let region = Name::from(group.region.as_str());
        let app = Name::from(identity.app.as_str());
        let stack = Name::from(identity.stack.as_str());
        let detail = Name::from(identity.detail.as_str());
        let cluster = Name::from(identity.cluster.as_str());
        let labels = Labels::from_pairs(
            group
                .tags
                .iter()
                .filter(|(k, _)| {
                    k != &rules.opt_in_tag && k != STACK_TAG && k != DETAIL_TAG && k != CLUSTER_TAG
                })
                .map(|(k, v)| (Name::from(k.as_str()), Name::from(v.as_str())))
                .chain([(Name::from(GROUP_LABEL), Name::from(group.name.as_str()))]),
        );
        for member in &group.members {
            let why = if !member.serves() {
                Some(format!(
                    "{} and {}, not InService and Healthy",
                    member.lifecycle, member.health
                ))
            } else {
                refusal.clone()
            };
            if let Some(reason) = why {
                skipped.push(Skipped {
                    instance: format!("{}/{}", group.name, member.id),
                    reason,
                });
                continue;
            }
            out.push(Instance {
                id: Name::from(member.id.as_str()),
                app: app.clone(),
                account: account.clone(),
                region: region.clone(),
                zone: Name::from(member.zone.as_str()),
                stack: stack.clone(),
                detail: detail.clone(),
                cluster: cluster.clone(),
                labels: labels.clone(),
            });
        }
    }
    (out, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(apps: &[&str]) -> Rules {
        Rules {
            apps: apps.iter().map(|a| a.to_string()).collect(),
            opt_in_tag: DEFAULT_OPT_IN_TAG.into(),
            account: "prod".into(),
            single_instance_apps: BTreeSet::new(),
        }
    }

    fn member(id: &str, zone: &str) -> Member {
        Member {
            id: id.into(),
            zone: zone.into(),
            lifecycle: "InService".into(),
            health: "Healthy".into(),
        }
    }

    fn group(name: &str, tags: &[(&str, &str)], members: Vec<Member>) -> Group {
        Group {
            name: name.into(),
            region: "us-east-1".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            suspended: Vec::new(),
            members,
        }
    }

    #[test]
    fn frigga_names_give_the_cluster_without_the_push_suffix() {
        let g = group("web-prod-east-v012", &[], vec![]);
        let id = identity(&g, &rules(&["web"])).unwrap();
        assert_eq!(
            (id.app.as_str(), id.stack.as_str(), id.detail.as_str()),
            ("web", "prod", "east")
        );
        assert_eq!(id.cluster, "web-prod-east");
        assert_eq!(identity(&g, &rules(&["api"])), None, "not a configured app");
    }

    #[test]
    fn the_opt_in_tag_names_the_app_and_the_other_tags_the_rest() {
        let tagged = group(
            "eks-nodes-8f3a",
            &[("simian:app", "api"), ("simian:stack", "prod")],
            vec![],
        );
        let id = identity(&tagged, &rules(&["api"])).unwrap();
        assert_eq!((id.app.as_str(), id.stack.as_str()), ("api", "prod"));
        assert_eq!(id.cluster, "api-prod");
        let own = group("eks-nodes-8f3a", &[("simian:app", "api")], vec![]);
        assert_eq!(
            identity(&own, &rules(&["api"])).unwrap().cluster,
            "eks-nodes-8f3a",
            "a tagged group with an unrelated name is a cluster of its own"
        );
        let explicit = group(
            "x",
            &[("simian:app", "api"), ("simian:cluster", "api-blue")],
            vec![],
        );
        assert_eq!(
            identity(&explicit, &rules(&["api"])).unwrap().cluster,
            "api-blue"
        );
        // The tag wins over the name: a group named like app "web" but tagged "api".
        let both = group("web-prod", &[("simian:app", "api")], vec![]);
        assert_eq!(identity(&both, &rules(&["web"])), None);
        assert_eq!(identity(&both, &rules(&["api"])).unwrap().app, "api");
    }

    #[test]
    fn only_in_service_and_healthy_instances_are_eligible() {
        let mut standby = member("i-2", "us-east-1b");
        standby.lifecycle = "Standby".into();
        let mut sick = member("i-3", "us-east-1c");
        sick.health = "Unhealthy".into();
        let g = group(
            "web-prod",
            &[("team", "core")],
            vec![
                member("i-1", "us-east-1a"),
                standby,
                sick,
                member("i-4", "us-east-1b"),
            ],
        );
        let (found, skipped) = instances(&[g], &rules(&["web"]));
        let ids: Vec<&str> = found.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["i-1", "i-4"]);
        assert_eq!(found[0].zone, "us-east-1a");
        assert_eq!(found[0].region, "us-east-1");
        assert_eq!(found[0].account, "prod");
        assert_eq!(found[0].cluster, "web-prod");
        assert_eq!(found[0].labels.get("team").map(Name::as_str), Some("core"));
        assert_eq!(
            found[0].labels.get("asg").map(Name::as_str),
            Some("web-prod")
        );
        assert_eq!(skipped.len(), 2);
        assert!(skipped[0].reason.contains("Standby"), "{skipped:?}");
        assert!(skipped[1].reason.contains("Unhealthy"), "{skipped:?}");
    }

    #[test]
    fn suspended_termination_and_single_instances_are_refused_with_the_reason() {
        let mut suspended = group(
            "web-prod",
            &[],
            vec![member("i-1", "a"), member("i-2", "b")],
        );
        suspended.suspended = vec!["Terminate".into()];
        let (found, skipped) = instances(&[suspended], &rules(&["web"]));
        assert!(found.is_empty());
        assert!(
            skipped[0].reason.contains("Terminate process"),
            "{skipped:?}"
        );

        let single = group("web-prod", &[], vec![member("i-1", "a")]);
        let (found, skipped) = instances(std::slice::from_ref(&single), &rules(&["web"]));
        assert!(found.is_empty());
        assert!(
            skipped[0].reason.contains("allow_single_replica"),
            "{skipped:?}"
        );
        let mut allowing = rules(&["web"]);
        allowing.single_instance_apps.insert("web".into());
        assert_eq!(instances(&[single], &allowing).0.len(), 1);
    }

    #[test]
    fn leaving_states() {
        for state in [
            "Terminating",
            "Terminating:Wait",
            "Terminated",
            "Detaching",
            "Detached",
        ] {
            let m = Member {
                lifecycle: state.into(),
                ..member("i-1", "a")
            };
            assert!(m.leaving(), "{state}");
        }
        assert!(!member("i-1", "a").leaving());
    }
}
