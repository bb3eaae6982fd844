//! The guardian: a process of its own that undoes a fault at its deadline.
//!
//! When the engine makes a fault with a deadline (a paused container), it records the lease
//! and calls [`ProcessGuardian::watch`], which starts `simian guard LEASE` detached in a
//! process group of its own: it outlives the simian that paused (a SIGKILL to that one, or a
//! Ctrl-C to its terminal's group, does not reach it), waits for the deadline, undoes the
//! fault through the configured provider, and ends the lease. If the guardian dies too, the
//! next simian command that opens the store, or the running daemon, undoes the fault.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use jiff::Timestamp;
use simian_core::{Guardian, Lease};
use simian_monkey::retry::Retry;

use crate::args::{Global, GuardArgs};
use crate::wire;

/// Starts `simian guard` for each lease.
pub struct ProcessGuardian {
    config: PathBuf,
}

impl ProcessGuardian {
    /// A guardian that reads the config at `config`.
    pub fn new(config: &Path) -> ProcessGuardian {
        ProcessGuardian {
            config: std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf()),
        }
    }
}

impl ProcessGuardian {
    /// Starts `simian guard ARGS` detached, in a process group of its own.
    fn spawn(&self, what: &str, args: &[&str]) {
        let spawned = std::env::current_exe().and_then(|exe| {
            Command::new(exe)
                .arg("--config")
                .arg(&self.config)
                .arg("guard")
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
        });
        match spawned {
            Ok(child) => tracing::debug!(what, pid = child.id(), "guardian started"),
            Err(e) => {
                tracing::warn!(what, error = %e, "cannot start a guardian; the fault is undone by the next simian command after its deadline")
            }
        }
    }
}

impl Guardian for ProcessGuardian {
    fn watch(&self, lease: &Lease) {
        self.spawn(&format!("lease {}", lease.id), &[&lease.id.to_string()]);
    }

    fn watch_drill(&self, drill: &simian_core::Drill) {
        self.spawn(
            &format!("drill {}", drill.id),
            &["--drill", &drill.id.to_string()],
        );
    }
}

/// How long a guardian keeps trying after the deadline before leaving the fault to the next
/// command that opens the store.
const GIVE_UP_AFTER: Duration = Duration::from_secs(3600);

/// How long a guardian keeps trying when it cannot even read its lease (the store is gone).
const GIVE_UP_FAILING: Duration = Duration::from_secs(600);

/// What one look at the lease decided.
enum Next {
    /// The fault is undone (by this guardian or another): stop.
    Done,
    /// Not yet due: look again after this long.
    Wait(Duration),
    /// Failing for too long: stop and leave it to reconciliation.
    GiveUp(String),
}

/// `simian guard LEASE`: waits for the lease's deadline, then undoes its fault; `simian guard
/// --drill ID`: the same for every lease of a drill.
pub fn run(g: &Global, a: GuardArgs) -> anyhow::Result<u8> {
    let settings = crate::commands::settings(g)?;
    let store = wire::store(&settings)?;
    let providers = wire::lease_providers(&settings, &store.open_leases()?)?;
    let mut retry = Retry::new("undoing a fault");
    let Some(lease_id) = a.lease else {
        let drill = a.drill.unwrap_or_default();
        return keep_trying(&mut retry, &format!("drill {drill}"), || {
            Ok(
                match simian_drills::guard_drill(store.as_ref(), &providers, drill)
                    .map_err(|e| anyhow::anyhow!(e))?
                {
                    simian_drills::GuardStep::Done => Next::Done,
                    simian_drills::GuardStep::Wait(d) => Next::Wait(d),
                },
            )
        });
    };
    let step = || -> anyhow::Result<Next> {
        let Some(lease) = store.lease(lease_id)? else {
            anyhow::bail!("no lease {lease_id} in the store");
        };
        if lease.ended_at.is_some() {
            return Ok(Next::Done);
        }
        let now = Timestamp::now();
        if now < lease.deadline {
            let left = Duration::try_from(lease.deadline.duration_since(now)).unwrap_or_default();
            // Wake at least every second, to notice a lease ended by someone else.
            return Ok(Next::Wait(left.min(Duration::from_secs(1))));
        }
        if Duration::try_from(now.duration_since(lease.deadline)).unwrap_or_default()
            > GIVE_UP_AFTER
        {
            return Ok(Next::GiveUp(format!(
                "lease {} is still open an hour after its deadline; the next simian command that opens the store undoes it",
                lease.id
            )));
        }
        let provider = providers.get(&lease.provider).ok_or_else(|| {
            anyhow::anyhow!(
                "lease {} names provider {:?}, which is not configured",
                lease.id,
                lease.provider
            )
        })?;
        let detail = provider.undo(&lease)?;
        store.end_lease(lease.id, Timestamp::now(), &detail)?;
        tracing::info!(lease = lease.id, %detail, "fault undone at its deadline");
        Ok(Next::Done)
    };
    keep_trying(&mut retry, &format!("lease {lease_id}"), step)
}

/// Runs `step` until it is done, waiting as it asks, retrying failures with back-off for
/// [`GIVE_UP_FAILING`].
fn keep_trying(
    retry: &mut Retry,
    what: &str,
    mut step: impl FnMut() -> anyhow::Result<Next>,
) -> anyhow::Result<u8> {
    let mut failing_since: Option<std::time::Instant> = None;
    loop {
        match step() {
            Ok(Next::Done) => return Ok(crate::commands::OK),
            Ok(Next::Wait(wait)) => {
                retry.succeeded();
                failing_since = None;
                std::thread::sleep(wait);
            }
            Ok(Next::GiveUp(why)) => anyhow::bail!(why),
            Err(e) => {
                let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > GIVE_UP_FAILING {
                    anyhow::bail!(
                        "{what}: failing for 10 minutes ({e:#}); the next simian command that opens the store undoes it"
                    );
                }
                std::thread::sleep(retry.failed(&format!("{e:#}")));
            }
        }
    }
}
