//! The plan of a drill: pure, from the policy and the inventories of this moment.
//!
//! For each app, the eligible instances inside the zone (Gorilla) or region (Kong) are acted
//! on, and everything outside stays up. An app is left out, with the reason, when acting
//! would leave it nothing: a drill proves that traffic moves to what is left, so there must be
//! something left.

use std::collections::BTreeMap;

use serde::Serialize;
use simian_core::{DrillKind, DrillMode, FaultKind, Instance};
use simian_monkey::AppPolicy;
use simian_monkey::eligibility::is_eligible;

/// One app as the planner sees it.
#[derive(Clone, Debug)]
pub struct AppInventory<'a> {
    /// Its policy.
    pub policy: &'a AppPolicy,
    /// The faults its provider can make.
    pub faults: &'static [FaultKind],
    /// The provider's kind (`process`, `docker`, ...), to name it in a refusal.
    pub provider_kind: &'static str,
    /// Its instances now (every app of the provider may be in it; only this app's count).
    pub instances: &'a [Instance],
}

/// One instance the drill acts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The instance.
    pub id: String,
    /// Its zone.
    pub zone: String,
    /// Its region.
    pub region: String,
    /// Its cluster.
    pub cluster: String,
}

/// What happens to one app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppPlan {
    /// The app.
    pub app: String,
    /// Its configured provider.
    pub provider: String,
    /// The instances acted on.
    pub act_on: Vec<Target>,
    /// How many instances stay up outside the zone or region, by zone.
    pub stays_up: BTreeMap<String, usize>,
    /// Instances inside that an exception or a never-eligible cluster spares.
    pub spared: usize,
}

/// An app the drill leaves alone, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeftOut {
    /// The app.
    pub app: String,
    /// Why.
    pub reason: String,
}

/// The whole plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Gorilla or Kong.
    pub kind: DrillKind,
    /// The zone or region.
    pub target: String,
    /// What is done to each instance.
    pub mode: DrillMode,
    /// The apps acted on.
    pub apps: Vec<AppPlan>,
    /// The apps left alone.
    pub left_out: Vec<LeftOut>,
}

impl Plan {
    /// How many instances the drill acts on.
    pub fn instance_count(&self) -> usize {
        self.apps.iter().map(|a| a.act_on.len()).sum()
    }

    /// Every zone the drill touches (sorted, unique).
    pub fn zones(&self) -> Vec<String> {
        let mut zones: Vec<String> = self
            .apps
            .iter()
            .flat_map(|a| a.act_on.iter().map(|t| t.zone.clone()))
            .collect();
        if self.kind == DrillKind::Gorilla {
            zones.push(self.target.clone());
        }
        zones.sort();
        zones.dedup();
        zones
    }
}

/// An app whose provider cannot make the drill's fault, with what it can do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// The app.
    pub app: String,
    /// Its provider's kind.
    pub provider_kind: &'static str,
    /// The modes it supports.
    pub supported: Vec<DrillMode>,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let supported: Vec<&str> = self.supported.iter().map(|m| m.as_str()).collect();
        write!(
            f,
            "app {} runs on a {} provider, which supports {}",
            self.app,
            self.provider_kind,
            supported.join(", ")
        )
    }
}

/// The modes a provider that can make `faults` supports: `terminate` always.
pub fn supported_modes(faults: &[FaultKind]) -> Vec<DrillMode> {
    [DrillMode::Terminate, DrillMode::Pause, DrillMode::Isolate]
        .into_iter()
        .filter(|m| m.fault().is_none_or(|f| faults.contains(&f)))
        .collect()
}

/// True when `instance` is inside the drill's zone or region.
pub fn inside(kind: DrillKind, target: &str, instance: &Instance) -> bool {
    match kind {
        DrillKind::Gorilla => instance.zone == target,
        DrillKind::Kong => instance.region == target,
    }
}

/// Plans a drill over `apps` (in config order). `Err` lists the apps with instances inside
/// whose provider cannot do `mode`: nothing may happen then.
pub fn plan(
    kind: DrillKind,
    target: &str,
    mode: DrillMode,
    apps: &[AppInventory<'_>],
) -> Result<Plan, Vec<Unsupported>> {
    let mut plan = Plan {
        kind,
        target: target.to_string(),
        mode,
        apps: Vec::new(),
        left_out: Vec::new(),
    };
    let mut unsupported = Vec::new();
    for a in apps {
        let name = a.policy.name.as_str();
        let own: Vec<&Instance> = a.instances.iter().filter(|i| i.app == name).collect();
        let (inside_all, outside): (Vec<&Instance>, Vec<&Instance>) =
            own.iter().partition(|i| inside(kind, target, i));
        if inside_all.is_empty() {
            continue;
        }
        if !a.policy.enabled {
            plan.left_out.push(LeftOut {
                app: name.to_string(),
                reason: "the app is disabled (enabled = false)".into(),
            });
            continue;
        }
        let act_on: Vec<&Instance> = inside_all
            .iter()
            .copied()
            .filter(|i| is_eligible(a.policy, i))
            .collect();
        if act_on.is_empty() {
            plan.left_out.push(LeftOut {
                app: name.to_string(),
                reason: format!(
                    "none of its {} instances in {} {target} is eligible (exceptions or a never-eligible cluster)",
                    inside_all.len(),
                    kind.scope()
                ),
            });
            continue;
        }
        let healthy_outside = outside.iter().filter(|i| is_eligible(a.policy, i)).count();
        if healthy_outside == 0 {
            plan.left_out.push(LeftOut {
                app: name.to_string(),
                reason: format!(
                    "it would lose every instance it has: all {} of its eligible instances are in {} {target}",
                    act_on.len(),
                    kind.scope()
                ),
            });
            continue;
        }
        if let Some(fault) = mode.fault()
            && !a.faults.contains(&fault)
        {
            unsupported.push(Unsupported {
                app: name.to_string(),
                provider_kind: a.provider_kind,
                supported: supported_modes(a.faults),
            });
            continue;
        }
        let mut stays_up = BTreeMap::new();
        for i in &outside {
            *stays_up.entry(i.zone.to_string()).or_insert(0) += 1;
        }
        let mut targets: Vec<Target> = act_on
            .iter()
            .map(|i| Target {
                id: i.id.to_string(),
                zone: i.zone.to_string(),
                region: i.region.to_string(),
                cluster: i.cluster.to_string(),
            })
            .collect();
        targets.sort_by(|x, y| (&x.zone, &x.cluster, &x.id).cmp(&(&y.zone, &y.cluster, &y.id)));
        plan.apps.push(AppPlan {
            app: name.to_string(),
            provider: a.policy.provider.clone(),
            act_on: targets,
            stays_up,
            spared: inside_all.len() - act_on.len(),
        });
    }
    if unsupported.is_empty() {
        Ok(plan)
    } else {
        Err(unsupported)
    }
}

#[cfg(test)]
mod tests {
    use simian_core::Grouping;
    use simian_monkey::Exception;

    use super::*;

    fn app(name: &str) -> AppPolicy {
        AppPolicy {
            name: name.into(),
            provider: "local".into(),
            enabled: true,
            mean_time_between_kills: 1.0,
            min_time_between_kills: 0,
            grouping: Grouping::Cluster,
            regions_independent: true,
            exceptions: Vec::new(),
        }
    }

    fn at(id: &str, app: &str, region: &str, zone: &str) -> Instance {
        Instance::builder(id, app).region(region).zone(zone).build()
    }

    fn inventory<'a>(policy: &'a AppPolicy, instances: &'a [Instance]) -> AppInventory<'a> {
        AppInventory {
            policy,
            faults: &[FaultKind::Pause],
            provider_kind: "process",
            instances,
        }
    }

    #[test]
    fn acts_on_the_zone_and_keeps_the_rest() {
        let (web, api) = (app("web"), app("api"));
        let fleet = vec![
            at("w1", "web", "r1", "z1"),
            at("w2", "web", "r1", "z2"),
            at("w3", "web", "r1", "z2"),
            at("a1", "api", "r1", "z1"),
        ];
        let p = plan(
            DrillKind::Gorilla,
            "z1",
            DrillMode::Pause,
            &[inventory(&web, &fleet), inventory(&api, &fleet)],
        )
        .unwrap();
        assert_eq!(p.apps.len(), 1);
        assert_eq!(p.apps[0].act_on[0].id, "w1");
        assert_eq!(p.apps[0].stays_up, BTreeMap::from([("z2".to_string(), 2)]));
        assert_eq!(p.left_out.len(), 1);
        assert_eq!(p.left_out[0].app, "api");
        assert!(p.left_out[0].reason.contains("lose every instance"));
        assert_eq!(p.zones(), vec!["z1".to_string()]);
        assert_eq!(p.instance_count(), 1);
    }

    #[test]
    fn kong_takes_the_region_and_its_zones() {
        let web = app("web");
        let fleet = vec![
            at("w1", "web", "east", "e1"),
            at("w2", "web", "east", "e2"),
            at("w3", "web", "west", "w1"),
        ];
        let p = plan(
            DrillKind::Kong,
            "east",
            DrillMode::Terminate,
            &[inventory(&web, &fleet)],
        )
        .unwrap();
        assert_eq!(p.instance_count(), 2);
        assert_eq!(p.zones(), vec!["e1".to_string(), "e2".to_string()]);
    }

    #[test]
    fn exceptions_and_disabled_apps_are_spared() {
        let mut web = app("web");
        web.exceptions.push(Exception {
            account: "*".into(),
            region: "*".into(),
            stack: "canary".into(),
            detail: "*".into(),
        });
        let mut off = app("off");
        off.enabled = false;
        let fleet = vec![
            at("w1", "web", "r1", "z1"),
            Instance::builder("w2", "web")
                .stack("canary")
                .region("r1")
                .zone("z1")
                .build(),
            at("w3", "web", "r1", "z2"),
            at("o1", "off", "r1", "z1"),
            at("o2", "off", "r1", "z2"),
        ];
        let p = plan(
            DrillKind::Gorilla,
            "z1",
            DrillMode::Terminate,
            &[inventory(&web, &fleet), inventory(&off, &fleet)],
        )
        .unwrap();
        assert_eq!(p.apps[0].spared, 1);
        assert_eq!(p.apps[0].act_on.len(), 1);
        assert!(p.left_out[0].reason.contains("disabled"));
    }

    #[test]
    fn a_mode_the_provider_cannot_do_is_refused_naming_what_it_can() {
        let web = app("web");
        let fleet = vec![at("w1", "web", "r1", "z1"), at("w2", "web", "r1", "z2")];
        let err = plan(
            DrillKind::Gorilla,
            "z1",
            DrillMode::Isolate,
            &[inventory(&web, &fleet)],
        )
        .unwrap_err();
        assert_eq!(
            err[0].to_string(),
            "app web runs on a process provider, which supports terminate, pause"
        );
        // An app with nothing in the zone does not matter.
        let far = vec![at("w2", "web", "r1", "z2")];
        assert!(
            plan(
                DrillKind::Gorilla,
                "z1",
                DrillMode::Isolate,
                &[inventory(&web, &far)]
            )
            .is_ok()
        );
    }
}
