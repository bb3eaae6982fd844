//! The provider conformance suite: the same behaviour, checked the same way, on every
//! provider. A provider joins by implementing [`Fixture`] over real instances that the test
//! starts itself (tagged with a run id unique to the test, so nothing else can be selected or
//! touched) and calling [`conformance_tests!`].

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use simian_core::{Instance, KillOutcome, Provider, ProviderError};

/// Real instances of one provider, started by the test.
pub trait Fixture {
    /// A provider that sees only this fixture's run.
    fn provider(&self) -> Box<dyn Provider>;

    /// Starts an instance of `app` with `stack`, `zone` and the label `team`, opted in and
    /// in this run; returns a handle.
    fn start(&mut self, app: &str, stack: &str, zone: &str, team: &str) -> usize;

    /// Starts an instance in this run that is not opted in (no app).
    fn start_not_opted_in(&mut self) -> usize;

    /// Starts an opted-in instance of `app` that belongs to another run (outside the
    /// provider's selector).
    fn start_elsewhere(&mut self, app: &str) -> usize;

    /// The id the provider lists the instance `handle` under.
    fn id(&self, handle: usize) -> String;

    /// Whether the instance still runs.
    fn alive(&mut self, handle: usize) -> bool;

    /// Makes the instance stop running (it may still exist, stopped).
    fn stop(&mut self, handle: usize);

    /// Removes the instance entirely.
    fn remove(&mut self, handle: usize);

    /// A provider and an instance of this run that it must refuse to touch whatever it says
    /// (the process or container Simian runs in).
    fn protected(&mut self) -> (Box<dyn Provider>, Instance, Option<usize>);

    /// How long after starting instances they are listed.
    fn settle(&self) {}

    /// The zone the provider reports for an instance started in zone `z` (`z1`, `z2`).
    fn zone(&self, z: &str) -> String {
        z.to_string()
    }

    /// The account and region the provider reports for this run's instances.
    fn account_and_region(&self) -> (String, String) {
        ("local".into(), "local".into())
    }

    /// True when the provider's platform replaces a killed instance (an Auto Scaling group
    /// launches another), so a listing after a kill has as many instances as before.
    fn replaces_killed(&self) -> bool {
        false
    }
}

fn listed(p: &dyn Provider, id: &str) -> Option<Instance> {
    p.instances().unwrap().into_iter().find(|i| i.id == id)
}

/// Lists exactly the opted-in instances of the run, with every field and label.
pub fn lists_opted_in_instances_with_fields(f: &mut dyn Fixture) {
    let web = f.start("web", "prod", "z1", "core");
    let api = f.start("api", "", "z2", "data");
    let _bare = f.start_not_opted_in();
    let _other = f.start_elsewhere("web");
    f.settle();
    let p = f.provider();
    let all = p.instances().unwrap();
    let mut ids: Vec<String> = all.iter().map(|i| i.id.to_string()).collect();
    ids.sort();
    let mut want = vec![f.id(web), f.id(api)];
    want.sort();
    assert_eq!(ids, want, "only the run's opted-in instances: {all:#?}");
    let w = listed(p.as_ref(), &f.id(web)).unwrap();
    let (account, region) = f.account_and_region();
    let z1 = f.zone("z1");
    assert_eq!(
        (
            w.app.as_str(),
            w.stack.as_str(),
            w.zone.as_str(),
            w.cluster.as_str(),
            w.account.as_str(),
            w.region.as_str()
        ),
        (
            "web",
            "prod",
            z1.as_str(),
            "web-prod",
            account.as_str(),
            region.as_str()
        )
    );
    assert_eq!(w.labels.get("team").map(|v| v.as_str()), Some("core"));
    let a = listed(p.as_ref(), &f.id(api)).unwrap();
    assert_eq!(
        (a.cluster.as_str(), a.zone.as_str()),
        ("api", f.zone("z2").as_str())
    );
}

/// Kills the drawn instance, verified, and nothing else; a second try is `AlreadyGone`.
pub fn terminates_exactly_the_drawn_instance(f: &mut dyn Fixture) {
    let handles: Vec<usize> = (0..3)
        .map(|_| f.start("web", "prod", "z1", "core"))
        .collect();
    f.settle();
    let p = f.provider();
    let victim = listed(p.as_ref(), &f.id(handles[1])).unwrap();
    let outcome = p.terminate(&victim, 1).unwrap();
    assert!(matches!(outcome, KillOutcome::Killed { .. }), "{outcome:?}");
    assert!(!f.alive(handles[1]), "verified dead");
    assert!(
        f.alive(handles[0]) && f.alive(handles[2]),
        "nothing else was touched"
    );
    assert_eq!(p.terminate(&victim, 1).unwrap(), KillOutcome::AlreadyGone);
    assert!(listed(p.as_ref(), &f.id(handles[1])).is_none());
    let left = if f.replaces_killed() { 3 } else { 2 };
    assert_eq!(p.instances().unwrap().len(), left);
}

/// An instance removed, or stopped, between the listing and the kill is `AlreadyGone`.
pub fn removed_or_stopped_instances_are_already_gone(f: &mut dyn Fixture) {
    let removed = f.start("web", "prod", "z1", "core");
    let stopped = f.start("web", "prod", "z1", "core");
    f.settle();
    let p = f.provider();
    let (r, s) = (
        listed(p.as_ref(), &f.id(removed)).unwrap(),
        listed(p.as_ref(), &f.id(stopped)).unwrap(),
    );
    f.remove(removed);
    f.stop(stopped);
    assert_eq!(p.terminate(&r, 1).unwrap(), KillOutcome::AlreadyGone);
    assert_eq!(p.terminate(&s, 1).unwrap(), KillOutcome::AlreadyGone);
}

/// An instance that is no longer the app it was listed as is refused, and left alone.
pub fn refuses_an_instance_that_is_not_the_app_it_was(f: &mut dyn Fixture) {
    let h = f.start("web", "prod", "z1", "core");
    f.settle();
    let p = f.provider();
    let mut i = listed(p.as_ref(), &f.id(h)).unwrap();
    i.app = "billing".into();
    assert!(
        matches!(p.terminate(&i, 1), Err(ProviderError::Refused { .. })),
        "refused"
    );
    assert!(f.alive(h), "left alone");
}

/// Never touches what Simian itself runs in.
pub fn never_touches_itself(f: &mut dyn Fixture) {
    let (p, me, handle) = f.protected();
    assert!(
        matches!(p.terminate(&me, 1), Err(ProviderError::Refused { .. })),
        "refused"
    );
    if let Some(h) = handle {
        assert!(f.alive(h), "left alone");
        assert!(listed(p.as_ref(), &f.id(h)).is_none(), "and never listed");
    }
}

/// One `#[test]` per conformance check, over the fixture `make(test_name)` returns; with
/// `ignore = "why"`, each is `#[ignore]`d for that reason (a service the test needs).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make, [],
            lists_opted_in_instances_with_fields,
            terminates_exactly_the_drawn_instance,
            removed_or_stopped_instances_are_already_gone,
            refuses_an_instance_that_is_not_the_app_it_was,
            never_touches_itself);
    };
    ($make:expr, ignore = $why:literal) => {
        $crate::conformance_tests!(@each $make, [$why],
            lists_opted_in_instances_with_fields,
            terminates_exactly_the_drawn_instance,
            removed_or_stopped_instances_are_already_gone,
            refuses_an_instance_that_is_not_the_app_it_was,
            never_touches_itself);
    };
    (@each $make:expr, [], $($check:ident),*) => {
        $(
            #[test]
            fn $check() {
                let mut fixture = $make(stringify!($check));
                conformance::$check(&mut fixture);
            }
        )*
    };
    (@each $make:expr, [$why:literal], $($check:ident),*) => {
        $(
            #[test]
            #[ignore = $why]
            fn $check() {
                let mut fixture = $make(stringify!($check));
                conformance::$check(&mut fixture);
            }
        )*
    };
}
