//! Groups: the set one kill is drawn from.
//!
//! Exactly as Chaos Monkey 2 forms them: every group is split by account; the grouping picks
//! app, stack or cluster; `regions_independent` splits each group further by region. A part
//! left `None` means "any" when matching instances at kill time.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Instance;

/// What a group is made of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grouping {
    /// One group per app (and account).
    App,
    /// One group per app and stack.
    Stack,
    /// One group per cluster (the default).
    #[default]
    Cluster,
}

impl Grouping {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Grouping::App => "app",
            Grouping::Stack => "stack",
            Grouping::Cluster => "cluster",
        }
    }
}

impl fmt::Display for Grouping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of instances that one kill is drawn from.
///
/// Ordering is by (app, account, region, stack, cluster), which keeps schedules stable.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Group {
    /// Application.
    pub app: String,
    /// Account.
    pub account: String,
    /// Region, when regions are independent.
    pub region: Option<String>,
    /// Stack, for stack grouping.
    pub stack: Option<String>,
    /// Cluster, for cluster grouping.
    pub cluster: Option<String>,
}

impl Group {
    /// The group `instance` belongs to under this grouping.
    pub fn of(instance: &Instance, grouping: Grouping, regions_independent: bool) -> Group {
        Group {
            app: instance.app.to_string(),
            account: instance.account.to_string(),
            region: regions_independent.then(|| instance.region.to_string()),
            stack: (grouping == Grouping::Stack).then(|| instance.stack.to_string()),
            cluster: (grouping == Grouping::Cluster).then(|| instance.cluster.to_string()),
        }
    }

    /// True when `instance` is a member of this group.
    pub fn contains(&self, instance: &Instance) -> bool {
        self.matches(
            &instance.app,
            &instance.account,
            &instance.region,
            &instance.stack,
            &instance.cluster,
        )
    }

    /// True when a recorded kill with these fields falls inside this group.
    pub fn matches(
        &self,
        app: &str,
        account: &str,
        region: &str,
        stack: &str,
        cluster: &str,
    ) -> bool {
        fn part(want: &Option<String>, have: &str) -> bool {
            want.as_deref().is_none_or(|w| w == have)
        }
        self.app == app
            && self.account == account
            && part(&self.region, region)
            && part(&self.stack, stack)
            && part(&self.cluster, cluster)
    }

    /// A stable text key, `app/account/region/stack/cluster` with `*` for "any".
    ///
    /// Used to derive a group's random stream from the seed, so that adding a group never
    /// changes the draws of the others.
    pub fn key(&self) -> String {
        let any = |p: &Option<String>| p.clone().unwrap_or_else(|| "*".into());
        format!(
            "{}/{}/{}/{}/{}",
            self.app,
            self.account,
            any(&self.region),
            any(&self.stack),
            any(&self.cluster)
        )
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}", self.app, self.account)?;
        if let Some(stack) = &self.stack {
            write!(f, ", stack {stack:?}")?;
        }
        if let Some(cluster) = &self.cluster {
            write!(f, ", cluster {cluster}")?;
        }
        if let Some(region) = &self.region {
            write!(f, ", region {region}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(cluster: &str, region: &str) -> Instance {
        Instance::builder("i", "app")
            .account("prod")
            .region(region)
            .cluster(cluster)
            .build()
    }

    /// The grouping table of the reference (§1.4): one group per ...
    #[test]
    fn grouping_table() {
        let a = inst("app-web-east", "us-east-1");
        type Row<'a> = (
            Grouping,
            bool,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
        );
        let cases: [Row; 6] = [
            (Grouping::App, true, Some("us-east-1"), None, None),
            (Grouping::App, false, None, None, None),
            (Grouping::Stack, true, Some("us-east-1"), Some("web"), None),
            (Grouping::Stack, false, None, Some("web"), None),
            (
                Grouping::Cluster,
                true,
                Some("us-east-1"),
                None,
                Some("app-web-east"),
            ),
            (Grouping::Cluster, false, None, None, Some("app-web-east")),
        ];
        for (grouping, independent, region, stack, cluster) in cases {
            let g = Group::of(&a, grouping, independent);
            assert_eq!(g.app, "app");
            assert_eq!(g.account, "prod");
            assert_eq!(g.region.as_deref(), region, "{grouping} {independent}");
            assert_eq!(g.stack.as_deref(), stack, "{grouping} {independent}");
            assert_eq!(g.cluster.as_deref(), cluster, "{grouping} {independent}");
        }
    }

    #[test]
    fn membership_follows_the_group_parts() {
        let east = inst("app-web-east", "us-east-1");
        let west = inst("app-web-east", "us-west-2");
        let other_cluster = inst("app-web-west", "us-east-1");
        let other_stack = inst("app-api", "us-east-1");
        let mut other_account = east.clone();
        other_account.account = "test".into();

        let g = Group::of(&east, Grouping::Cluster, true);
        assert!(g.contains(&east));
        assert!(!g.contains(&west));
        assert!(!g.contains(&other_cluster));
        assert!(!g.contains(&other_account));

        let g = Group::of(&east, Grouping::Stack, false);
        assert!(g.contains(&west) && g.contains(&other_cluster));
        assert!(!g.contains(&other_stack));

        let g = Group::of(&east, Grouping::App, false);
        assert!(g.contains(&other_stack) && g.contains(&west));
        assert!(!g.contains(&other_account));
    }

    #[test]
    fn keys_are_distinct_and_stable() {
        let g = Group::of(&inst("app-web", "r1"), Grouping::Cluster, true);
        assert_eq!(g.key(), "app/prod/r1/*/app-web");
    }
}
