//! The monkey's policy: what the configuration file says, typed and validated.
//!
//! The engine re-reads the policy through a [`PolicySource`] at every kill, so the kill switch,
//! `dry_run` and every app's settings take effect without a restart.

use simian_core::{Group, Grouping, Instance};

use crate::Calendar;

/// The whole monkey policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Kill switch, read at every kill.
    pub enabled: bool,
    /// Record, never act. Default true.
    pub dry_run: bool,
    /// Work days and the kill window.
    pub calendar: Calendar,
    /// Global guardrail: kills (over all groups) per local day.
    pub max_kills_per_day: u32,
    /// Fixed seed for reproducible schedules.
    pub seed: Option<u64>,
    /// The apps, in config order.
    pub apps: Vec<AppPolicy>,
}

impl Policy {
    /// The app named `name`.
    pub fn app(&self, name: &str) -> Option<&AppPolicy> {
        self.apps.iter().find(|a| a.name == name)
    }
}

/// One app's Chaos Monkey settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AppPolicy {
    /// App name (matches `Instance::app`).
    pub name: String,
    /// The configured provider its instances come from.
    pub provider: String,
    /// Opted in.
    pub enabled: bool,
    /// μ: mean work days between kills in each group (> 0); p = 1/μ per work day.
    pub mean_time_between_kills: f64,
    /// ɛ: no two kills in a group closer than this many work days.
    pub min_time_between_kills: u32,
    /// What a group is made of.
    pub grouping: Grouping,
    /// Each region its own group.
    pub regions_independent: bool,
    /// Opt-outs.
    pub exceptions: Vec<Exception>,
}

impl AppPolicy {
    /// The daily kill probability of each group, `min(1, 1/μ)`.
    pub fn daily_probability(&self) -> f64 {
        (1.0 / self.mean_time_between_kills).min(1.0)
    }
}

/// An opt-out: instances whose cluster matches all four fields are never eligible.
///
/// A field matches when it is `*` or equal to the value (case-sensitive). Stack and detail are
/// the parts of the instance's cluster name, so an empty detail matches only clusters without
/// one, exactly as in Chaos Monkey 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exception {
    /// Account or `*`.
    pub account: String,
    /// Region or `*`.
    pub region: String,
    /// Stack or `*`.
    pub stack: String,
    /// Detail or `*`.
    pub detail: String,
}

impl Exception {
    /// True when `instance` is excepted.
    pub fn matches(&self, instance: &Instance) -> bool {
        fn field(pattern: &str, value: &str) -> bool {
            pattern == "*" || pattern == value
        }
        field(&self.account, &instance.account)
            && field(&self.region, &instance.region)
            && field(&self.stack, &instance.stack)
            && field(&self.detail, &instance.detail)
    }
}

/// What one kill request aims at: an app and optional filters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// The app.
    pub app: String,
    /// Only this account.
    pub account: Option<String>,
    /// Only this region.
    pub region: Option<String>,
    /// Only this stack.
    pub stack: Option<String>,
    /// Only this cluster.
    pub cluster: Option<String>,
}

impl Target {
    /// A target covering exactly one group.
    pub fn group(group: &Group) -> Target {
        Target {
            app: group.app.clone(),
            account: Some(group.account.clone()),
            region: group.region.clone(),
            stack: group.stack.clone(),
            cluster: group.cluster.clone(),
        }
    }

    /// True when `instance` passes the filters.
    pub fn matches(&self, instance: &Instance) -> bool {
        fn part(want: &Option<String>, have: &str) -> bool {
            want.as_deref().is_none_or(|w| w == have)
        }
        instance.app == self.app
            && part(&self.account, &instance.account)
            && part(&self.region, &instance.region)
            && part(&self.stack, &instance.stack)
            && part(&self.cluster, &instance.cluster)
    }
}

/// Where the engine gets the current policy; re-read at every kill.
pub trait PolicySource: Send + Sync {
    /// The policy now, or why it cannot be read.
    fn load(&self) -> Result<Policy, String>;
}

/// A policy that never changes (tests, the demo).
impl PolicySource for Policy {
    fn load(&self) -> Result<Policy, String> {
        Ok(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exc(account: &str, region: &str, stack: &str, detail: &str) -> Exception {
        Exception {
            account: account.into(),
            region: region.into(),
            stack: stack.into(),
            detail: detail.into(),
        }
    }

    /// Exception matching as the reference (§1.3) defines it.
    #[test]
    fn exception_table() {
        let i = Instance::builder("i", "app")
            .account("prod")
            .region("us-east-1")
            .cluster("app-web-canaryx")
            .build();
        let no_detail = Instance::builder("i", "app")
            .account("prod")
            .region("us-east-1")
            .cluster("app-web")
            .build();
        let cases = [
            (exc("prod", "us-east-1", "web", "canaryx"), true, false),
            (exc("*", "*", "*", "*"), true, true),
            (exc("prod", "*", "web", "*"), true, true),
            (exc("test", "*", "*", "*"), false, false),
            (exc("prod", "us-west-2", "*", "*"), false, false),
            (exc("prod", "*", "web", ""), false, true),
            (exc("prod", "*", "Web", "*"), false, false),
            (exc("prod", "*", "we*", "*"), false, false),
        ];
        for (e, on_i, on_no_detail) in cases {
            assert_eq!(e.matches(&i), on_i, "{e:?} on {}", i.cluster);
            assert_eq!(
                e.matches(&no_detail),
                on_no_detail,
                "{e:?} on {}",
                no_detail.cluster
            );
        }
    }

    #[test]
    fn probability_is_capped() {
        let mut app = AppPolicy {
            name: "a".into(),
            provider: "p".into(),
            enabled: true,
            mean_time_between_kills: 4.0,
            min_time_between_kills: 1,
            grouping: Grouping::Cluster,
            regions_independent: false,
            exceptions: vec![],
        };
        assert_eq!(app.daily_probability(), 0.25);
        app.mean_time_between_kills = 0.5;
        assert_eq!(app.daily_probability(), 1.0);
    }
}
