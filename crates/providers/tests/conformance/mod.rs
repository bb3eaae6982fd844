//! The provider conformance suite: the same behaviour, checked the same way, on every
//! provider. A provider joins by implementing [`Fixture`] over real instances that the test
//! starts itself (tagged with a run id unique to the test, so nothing else can be selected or
//! touched) and calling [`conformance_tests!`].

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use simian_core::{FaultKind, FaultOutcome, Instance, KillOutcome, Lease, Provider, ProviderError};

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

    /// Whether the instance `handle` holds the fault `kind` now (stopped, paused, cut off the
    /// network), seen from outside the provider. Only asked for the kinds the provider's
    /// `faults()` names.
    fn faulted(&mut self, _handle: usize, _kind: FaultKind) -> bool {
        false
    }
}

/// A lease as the store would hand it back, for fault `kind` on the instance `instance_id`,
/// with no memo.
fn bare_lease(p: &dyn Provider, instance_id: &str, kind: FaultKind, id: i64) -> Lease {
    let now = jiff::Timestamp::now();
    Lease {
        id,
        termination: None,
        drill: Some(1),
        provider: p.name().to_string(),
        instance_id: instance_id.to_string(),
        kind,
        deadline: now + jiff::SignedDuration::from_secs(60),
        created_at: now,
        memo: None,
        undo_at: None,
        ended_at: None,
        ending: None,
    }
}

/// A lease for fault `kind` on `instance`, with what the provider records before the fault.
fn lease(p: &dyn Provider, instance: &Instance, kind: FaultKind, id: i64) -> Lease {
    Lease {
        memo: p.fault_memo(instance, kind).unwrap(),
        ..bare_lease(p, &instance.id, kind, id)
    }
}

/// Every fault the provider names is made on exactly the instance, verified, and undone,
/// verified; undoing twice is harmless; a fault on an instance that is gone is `AlreadyGone`;
/// a fault it does not name is refused, touching nothing.
pub fn makes_and_undoes_the_faults_it_names(f: &mut dyn Fixture) {
    let target = f.start("web", "prod", "z1", "core");
    let bystander = f.start("web", "prod", "z1", "core");
    let gone = f.start("web", "prod", "z1", "core");
    f.settle();
    let p = f.provider();
    let faults = p.faults();
    let (t, g) = (
        listed(p.as_ref(), &f.id(target)).unwrap(),
        listed(p.as_ref(), &f.id(gone)).unwrap(),
    );
    for (n, kind) in faults.iter().enumerate() {
        let l = lease(p.as_ref(), &t, *kind, 100 + n as i64);
        let made = p.make_fault(&t, &l).unwrap();
        assert!(
            matches!(made, FaultOutcome::Made { .. }),
            "{kind}: {made:?}"
        );
        assert!(f.faulted(target, *kind), "{kind}: verified in place");
        assert!(
            !f.faulted(bystander, *kind),
            "{kind}: nothing else was touched"
        );
        let undone = p.undo(&l).unwrap();
        assert!(!f.faulted(target, *kind), "{kind}: undone ({undone})");
        assert!(f.alive(target), "{kind}: still runs");
        let again = p.undo(&l).unwrap();
        assert!(again.starts_with("nothing to undo"), "{kind}: {again}");
    }
    f.remove(gone);
    for (n, kind) in faults.iter().enumerate() {
        let l = bare_lease(p.as_ref(), &g.id, *kind, 200 + n as i64);
        assert_eq!(
            p.make_fault(&g, &l).unwrap(),
            FaultOutcome::AlreadyGone,
            "{kind}"
        );
        assert!(p.undo(&l).unwrap().starts_with("nothing to undo"), "{kind}");
    }
    for kind in [FaultKind::Pause, FaultKind::Isolate] {
        if faults.contains(&kind) {
            continue;
        }
        let l = bare_lease(p.as_ref(), &t.id, kind, 300);
        assert!(
            matches!(p.make_fault(&t, &l), Err(ProviderError::Refused { .. })),
            "{kind} is not something a {} provider does",
            p.kind()
        );
    }
    assert!(f.alive(target) && f.alive(bystander));
}

/// Never makes a fault on what Simian itself runs in.
pub fn never_faults_itself(f: &mut dyn Fixture) {
    let (p, me, handle) = f.protected();
    for kind in p.faults() {
        let l = bare_lease(p.as_ref(), &me.id, *kind, 400);
        assert!(
            matches!(p.make_fault(&me, &l), Err(ProviderError::Refused { .. })),
            "{kind}: refused"
        );
        if let Some(h) = handle {
            assert!(!f.faulted(h, *kind), "{kind}: left alone");
        }
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
            never_touches_itself,
            makes_and_undoes_the_faults_it_names,
            never_faults_itself);
    };
    ($make:expr, ignore = $why:literal) => {
        $crate::conformance_tests!(@each $make, [$why],
            lists_opted_in_instances_with_fields,
            terminates_exactly_the_drawn_instance,
            removed_or_stopped_instances_are_already_gone,
            refuses_an_instance_that_is_not_the_app_it_was,
            never_touches_itself,
            makes_and_undoes_the_faults_it_names,
            never_faults_itself);
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
