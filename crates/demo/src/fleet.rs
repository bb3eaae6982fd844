//! The demo fleet and its supervisor.
//!
//! The supervisor starts every instance (`simian demo-service`) as a real process, labelled
//! through its environment like any process target, or as a Docker container labelled the
//! same way ([`crate::containers`]), each with this run's unique label, and replaces an
//! instance that died after a short delay, as an Auto Scaling group or a ReplicaSet would. It
//! only ever touches the instances it started itself.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::containers::Containers;
use crate::view::Note;

/// One place in the fleet, filled by successive instances.
#[derive(Clone, Debug)]
pub struct Slot {
    /// `z1-0`: zone and replica.
    pub name: String,
    /// The zone.
    pub zone: String,
    /// Where the current instance listens; the last known address while it is being replaced.
    pub addr: Option<SocketAddr>,
    /// Last health verdict (the robust balancer's view).
    pub healthy: bool,
}

/// The slots, shared with the balancer.
pub type Slots = Arc<RwLock<Vec<Slot>>>;

/// The app name every demo instance carries.
pub const APP: &str = "shop";
/// The stack every demo instance carries; each zone is its own cluster `shop-web-<zone>`.
pub const STACK: &str = "web";

/// The running fleet.
pub struct Fleet {
    /// Shared slot table.
    pub slots: Slots,
    /// Instances started to replace dead ones.
    pub replacements: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    supervisor: Option<std::thread::JoinHandle<()>>,
}

/// Where the fleet's instances run.
pub enum Backend {
    /// Local processes.
    Processes,
    /// Docker containers.
    Containers(Containers),
}

/// One running instance.
enum Handle {
    Process(Child),
    Container(String),
}

struct Member {
    handle: Option<Handle>,
    died_at: Option<Instant>,
}

impl Backend {
    fn spawn(&self, run_id: &str, zone: &str, slot: &str) -> anyhow::Result<(Handle, SocketAddr)> {
        match self {
            Backend::Processes => {
                spawn_process(run_id, zone, slot).map(|(c, a)| (Handle::Process(c), a))
            }
            Backend::Containers(c) => c
                .spawn(zone, slot)
                .map(|(id, a)| (Handle::Container(id), a)),
        }
    }

    /// Ends an instance this fleet started (cleanup only).
    fn end(&self, handle: &mut Handle) {
        match (self, handle) {
            (_, Handle::Process(c)) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            (Backend::Containers(c), Handle::Container(id)) => c.remove(id),
            (Backend::Processes, Handle::Container(_)) => {}
        }
    }

    /// Removes what the backend made besides the instances (the image).
    fn cleanup(&self) {
        if let Backend::Containers(c) = self {
            c.cleanup();
        }
    }
}

fn spawn_process(run_id: &str, zone: &str, slot: &str) -> anyhow::Result<(Child, SocketAddr)> {
    let exe = std::env::current_exe().context("locating the simian binary")?;
    let mut child = Command::new(exe)
        .args(["demo-service", "--port", "0"])
        .env("SIMIAN_APP", APP)
        .env("SIMIAN_STACK", STACK)
        .env("SIMIAN_DETAIL", zone)
        .env("SIMIAN_ZONE", zone)
        .env("SIMIAN_ACCOUNT", "demo")
        .env("SIMIAN_REGION", "local")
        .env("SIMIAN_LABEL_RUN", run_id)
        .env("SIMIAN_LABEL_SLOT", slot)
        .env_remove("SIMIAN_LOG")
        // Its own process group: Ctrl-C reaches the demo, which then cleans up.
        .process_group(0)
        // The service exits when this pipe closes, i.e. when the demo is gone.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting a demo instance")?;
    let Some(stdout) = child.stdout.take() else {
        bail!("demo instance has no stdout")
    };
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .context("reading the demo instance's address")?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|a| a.parse().ok());
    match addr {
        Some(addr) => Ok((child, addr)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("demo instance did not start (said {line:?})")
        }
    }
}

impl Fleet {
    /// Starts `zones` x `replicas` instances and their supervisor.
    pub fn start(
        backend: Backend,
        run_id: &str,
        zones: u8,
        replicas: u8,
        replace_after: Duration,
        notes: Sender<Note>,
    ) -> anyhow::Result<Fleet> {
        let mut slots = Vec::new();
        let mut members = Vec::new();
        let cleanup = |members: &mut Vec<Member>| {
            for m in members.iter_mut() {
                if let Some(h) = m.handle.as_mut() {
                    backend.end(h);
                }
            }
            backend.cleanup();
        };
        for z in 1..=zones {
            for r in 0..replicas {
                let zone = format!("z{z}");
                let name = format!("{zone}-{r}");
                match backend.spawn(run_id, &zone, &name) {
                    Ok((handle, addr)) => {
                        slots.push(Slot {
                            name,
                            zone,
                            addr: Some(addr),
                            healthy: true,
                        });
                        members.push(Member {
                            handle: Some(handle),
                            died_at: None,
                        });
                    }
                    Err(e) => {
                        cleanup(&mut members);
                        return Err(e);
                    }
                }
            }
        }
        let slots: Slots = Arc::new(RwLock::new(slots));
        let replacements = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let supervisor = {
            let (slots, replacements, stop, run_id) = (
                slots.clone(),
                replacements.clone(),
                stop.clone(),
                run_id.to_string(),
            );
            std::thread::Builder::new()
                .name("demo-supervisor".into())
                .spawn(move || {
                    supervise(
                        &backend,
                        &run_id,
                        &slots,
                        &mut members,
                        &replacements,
                        &stop,
                        replace_after,
                        &notes,
                    )
                })
                .context("starting the supervisor")?
        };
        Ok(Fleet {
            slots,
            replacements,
            stop,
            supervisor: Some(supervisor),
        })
    }

    /// Stops the supervisor and every instance it started.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.supervisor.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop();
    }
}

#[allow(clippy::too_many_arguments)]
fn supervise(
    backend: &Backend,
    run_id: &str,
    slots: &Slots,
    members: &mut [Member],
    replacements: &AtomicU64,
    stop: &AtomicBool,
    replace_after: Duration,
    notes: &Sender<Note>,
) {
    let mut containers_seen: Option<(Instant, std::collections::HashSet<String>)> = None;
    while !stop.load(Ordering::SeqCst) {
        // Containers are listed in one call, at most every 200 ms.
        if let Backend::Containers(c) = backend
            && containers_seen
                .as_ref()
                .is_none_or(|(at, _)| at.elapsed() >= Duration::from_millis(200))
        {
            match c.running() {
                Ok(running) => containers_seen = Some((Instant::now(), running)),
                Err(e) => tracing::warn!(error = %e, "cannot list the demo's containers"),
            }
        }
        for (i, m) in members.iter_mut().enumerate() {
            let dead = match m.handle.as_mut() {
                Some(Handle::Process(c)) => matches!(c.try_wait(), Ok(Some(_))),
                Some(Handle::Container(id)) => containers_seen
                    .as_ref()
                    .is_some_and(|(_, running)| !running.contains(id.as_str())),
                None => false,
            };
            if dead {
                if let Some(mut h) = m.handle.take() {
                    // A stopped container is removed; a dead process is reaped.
                    backend.end(&mut h);
                }
                m.died_at = Some(Instant::now());
            }
            if let Some(died) = m.died_at.filter(|d| d.elapsed() >= replace_after) {
                let (zone, name) = {
                    let s = slots.read().unwrap_or_else(|e| e.into_inner());
                    (s[i].zone.clone(), s[i].name.clone())
                };
                match backend.spawn(run_id, &zone, &name) {
                    Ok((handle, addr)) => {
                        m.handle = Some(handle);
                        m.died_at = None;
                        containers_seen = None;
                        replacements.fetch_add(1, Ordering::SeqCst);
                        let mut s = slots.write().unwrap_or_else(|e| e.into_inner());
                        s[i].addr = Some(addr);
                        s[i].healthy = true;
                        let _ = notes.send(Note::Replaced {
                            slot: name,
                            after: died.elapsed(),
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, slot = %name, "replacement failed; retrying");
                        m.died_at = Some(Instant::now());
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for m in members.iter_mut() {
        if let Some(h) = m.handle.as_mut() {
            backend.end(h);
        }
    }
    backend.cleanup();
}
