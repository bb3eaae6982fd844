//! Which instances may die, and the groups they form.
//!
//! An instance is eligible when its app is opted in, its cluster does not carry a
//! never-eligible suffix, and no exception matches it. Groups are formed from eligible
//! instances only, so a schedule never plans a kill that can only be refused; kill time checks
//! eligibility again, against the inventory of that moment.

use std::collections::{BTreeSet, HashMap};

use simian_core::{Group, Grouping, Instance, is_never_eligible_cluster};

use crate::{AppPolicy, Target};

/// True when `instance` may be killed under `app`'s policy (ignoring time-based checks).
pub fn is_eligible(app: &AppPolicy, instance: &Instance) -> bool {
    instance.app == app.name
        && !is_never_eligible_cluster(&instance.cluster)
        && !app.exceptions.iter().any(|e| e.matches(instance))
}

/// The eligible instances matching `target`, in a stable order (zone, cluster, labels, id),
/// so that a seeded draw picks the same position in the same fleet.
pub fn eligible<'a>(
    app: &AppPolicy,
    target: &Target,
    instances: &'a [Instance],
) -> Vec<&'a Instance> {
    let mut out: Vec<&Instance> = instances
        .iter()
        .filter(|i| target.matches(i) && is_eligible(app, i))
        .collect();
    out.sort_by(|a, b| {
        (&a.zone, &a.cluster, &a.labels, &a.id).cmp(&(&b.zone, &b.cluster, &b.labels, &b.id))
    });
    out
}

/// The groups `app`'s eligible instances form, sorted.
pub fn groups<'a>(
    app: &AppPolicy,
    instances: impl IntoIterator<Item = &'a Instance>,
) -> Vec<Group> {
    // Bucket by the identity of the shared names first (cheap to hash, and a provider that
    // interns gives one identity per text), then merge the buckets by text and sort: one
    // allocation per group, and no string hashed per instance.
    let mut by_identity: HashMap<[usize; 4], &Instance, foldhash::fast::RandomState> =
        HashMap::default();
    for i in instances.into_iter().filter(|i| is_eligible(app, i)) {
        let (grouping, by_region) = (app.grouping, app.regions_independent);
        let identity = [
            i.account.addr(),
            if by_region { i.region.addr() } else { 0 },
            if grouping == Grouping::Stack {
                i.stack.addr()
            } else {
                0
            },
            if grouping == Grouping::Cluster {
                i.cluster.addr()
            } else {
                0
            },
        ];
        by_identity.entry(identity).or_insert(i);
    }
    let keys: BTreeSet<GroupKey<'_>> = by_identity
        .into_values()
        .map(|i| group_key(i, app.grouping, app.regions_independent))
        .collect();
    keys.into_iter()
        .map(|(account, region, stack, cluster)| Group {
            app: app.name.clone(),
            account: account.to_string(),
            region: region.map(str::to_string),
            stack: stack.map(str::to_string),
            cluster: cluster.map(str::to_string),
        })
        .collect()
}

/// The borrowed parts of a group: (account, region, stack, cluster).
type GroupKey<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);

/// The key of the group `i` belongs to.
fn group_key(i: &Instance, grouping: Grouping, regions_independent: bool) -> GroupKey<'_> {
    (
        i.account.as_str(),
        regions_independent.then_some(i.region.as_str()),
        (grouping == Grouping::Stack).then_some(i.stack.as_str()),
        (grouping == Grouping::Cluster).then_some(i.cluster.as_str()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Exception;

    fn app(grouping: Grouping, regions_independent: bool) -> AppPolicy {
        AppPolicy {
            name: "app".into(),
            provider: "p".into(),
            enabled: true,
            mean_time_between_kills: 2.0,
            min_time_between_kills: 1,
            grouping,
            regions_independent,
            exceptions: vec![Exception {
                account: "prod".into(),
                region: "*".into(),
                stack: "canary".into(),
                detail: "*".into(),
            }],
        }
    }

    fn fleet() -> Vec<Instance> {
        let mk = |id: &str, account: &str, region: &str, cluster: &str| {
            Instance::builder(id, "app")
                .account(account)
                .region(region)
                .cluster(cluster)
                .build()
        };
        vec![
            mk("1", "prod", "us-east-1", "app-web"),
            mk("2", "prod", "us-west-2", "app-web"),
            mk("3", "prod", "us-east-1", "app-web-east"),
            mk("4", "prod", "us-east-1", "app-api"),
            mk("5", "test", "us-east-1", "app-web"),
            mk("6", "prod", "us-east-1", "app-canary"),
            mk("7", "prod", "us-east-1", "app-web-canary"),
            Instance::builder("8", "other")
                .account("prod")
                .region("us-east-1")
                .build(),
        ]
    }

    #[test]
    fn group_counts_follow_the_reference_table() {
        let f = fleet();
        // eligible: 1..=5 (6 is excepted by stack, 7 has a never-eligible suffix, 8 is another app)
        let count = |g, r| groups(&app(g, r), &f).len();
        assert_eq!(count(Grouping::App, false), 2); // prod, test
        assert_eq!(count(Grouping::App, true), 3); // prod/east, prod/west, test/east
        assert_eq!(count(Grouping::Stack, false), 3); // prod/web, prod/api, test/web
        assert_eq!(count(Grouping::Stack, true), 4);
        assert_eq!(count(Grouping::Cluster, false), 4); // app-web, app-web-east, app-api (prod), app-web (test)
        assert_eq!(count(Grouping::Cluster, true), 5);
    }

    #[test]
    fn eligible_applies_filters_exceptions_and_suffixes() {
        let f = fleet();
        let a = app(Grouping::Cluster, false);
        let all = Target {
            app: "app".into(),
            ..Target::default()
        };
        let ids: Vec<&str> = eligible(&a, &all, &f)
            .iter()
            .map(|i| i.id.as_str())
            .collect();
        assert_eq!(ids.len(), 5);
        assert!(!ids.contains(&"6") && !ids.contains(&"7") && !ids.contains(&"8"));
        let prod_web = Target {
            app: "app".into(),
            account: Some("prod".into()),
            cluster: Some("app-web".into()),
            ..Target::default()
        };
        let ids: Vec<&str> = eligible(&a, &prod_web, &f)
            .iter()
            .map(|i| i.id.as_str())
            .collect();
        assert_eq!(ids, vec!["1", "2"]);
    }
}
