//! The demo fleet as Docker containers (`simian demo --docker`).
//!
//! Nothing is pulled: the image is made here from nothing but the running simian binary and
//! the shared libraries it needs (as `ldd` lists them), imported as one layer, and each container runs
//! `simian demo-service` on port 8080 of its own network namespace, published on 127.0.0.1
//! only. Containers carry the same `simian.*` labels as the process fleet's environment, the
//! run's label, and the demo's pid; the image is tagged with the pid. Everything is removed
//! when the demo ends (also on Ctrl-C), and a demo that starts removes what an earlier demo,
//! whose process is gone, left behind after a crash. Nothing else is ever touched.

use std::collections::HashSet;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::fleet::{APP, STACK};

/// The label holding the pid of the demo that made a container or an image.
const PID_LABEL: &str = "simian.demo.pid";
/// The repository of the demo's images.
const IMAGE: &str = "simian-demo";
/// The port the service listens on inside a container.
const PORT: u16 = 8080;

fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running the docker CLI (is Docker installed?)")?;
    if !out.status.success() {
        bail!(
            "docker {}: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The containers of one demo run.
pub struct Containers {
    run_id: String,
    image: String,
    pid: String,
}

impl Containers {
    /// Removes what crashed earlier demos left, then builds this demo's image.
    pub fn prepare(run_id: &str) -> anyhow::Result<Containers> {
        docker(&["info", "--format", "{{.ServerVersion}}"])
            .context("no Docker engine answers: start it, or run the demo without --docker")?;
        remove_leftovers();
        let pid = std::process::id().to_string();
        let image = format!("{IMAGE}:{pid}");
        let dir = tempfile::tempdir().context("a folder for the image")?;
        let exe = std::env::current_exe().context("locating the simian binary")?;
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(&root)?;
        std::fs::copy(&exe, root.join("simian")).context("copying the simian binary")?;
        for lib in shared_libraries(&exe)? {
            let target = root.join(lib.strip_prefix("/").unwrap_or(&lib));
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&lib, &target).with_context(|| format!("copying {}", lib.display()))?;
        }
        // `docker import` of a tarball makes a one-layer image without the builder's cache,
        // which demos building at the same time would share, and remove from each other.
        let tarball = dir.path().join("image.tar");
        let tarred = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .status()
            .context("running tar to pack the image")?;
        if !tarred.success() {
            bail!("tar could not pack the demo image ({tarred})");
        }
        let label = format!("LABEL {PID_LABEL}={pid}");
        docker(&[
            "import",
            "--change",
            "ENTRYPOINT [\"/simian\"]",
            "--change",
            &label,
            &tarball.to_string_lossy(),
            &image,
        ])
        .context("building the demo image")?;
        Ok(Containers {
            run_id: run_id.to_string(),
            image,
            pid,
        })
    }

    /// Starts one instance; its container id and the 127.0.0.1 address it is published on.
    pub fn spawn(&self, zone: &str, slot: &str) -> anyhow::Result<(String, SocketAddr)> {
        let labels = [
            ("simian.app", APP),
            ("simian.stack", STACK),
            ("simian.detail", zone),
            ("simian.zone", zone),
            ("simian.account", "demo"),
            ("simian.region", "local"),
            ("run", self.run_id.as_str()),
            ("slot", slot),
            (PID_LABEL, self.pid.as_str()),
        ];
        let mut args: Vec<String> = vec!["run".into(), "-d".into(), "-i".into()];
        for (k, v) in labels {
            args.push("--label".into());
            args.push(format!("{k}={v}"));
        }
        args.extend([
            "-p".into(),
            format!("127.0.0.1::{PORT}"),
            self.image.clone(),
            "demo-service".into(),
            "--host".into(),
            "0.0.0.0".into(),
            "--port".into(),
            PORT.to_string(),
        ]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let id = docker(&refs).context("starting a demo container")?;
        let ready = (|| -> anyhow::Result<SocketAddr> {
            let published = docker(&["port", &id, &format!("{PORT}/tcp")])?;
            let addr: SocketAddr = published
                .lines()
                .find_map(|l| l.trim().parse().ok())
                .with_context(|| format!("no 127.0.0.1 port published: {published:?}"))?;
            // Ready once the service says so (the engine's port accepts before it does).
            let deadline = Instant::now() + Duration::from_secs(15);
            while !docker(&["logs", &id])?.contains("listening") {
                if Instant::now() > deadline {
                    bail!("the service in {id} did not start");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(addr)
        })();
        match ready {
            Ok(addr) => Ok((id, addr)),
            Err(e) => {
                self.remove(&id);
                Err(e)
            }
        }
    }

    /// The ids of this run's running containers.
    pub fn running(&self) -> anyhow::Result<HashSet<String>> {
        let filter = format!("label=run={}", self.run_id);
        let out = docker(&["ps", "-q", "--no-trunc", "--filter", &filter])?;
        Ok(out.lines().map(str::to_string).collect())
    }

    /// Removes one container of this run.
    pub fn remove(&self, id: &str) {
        let _ = docker(&["rm", "-f", id]);
    }

    /// Removes every container of this run, and the image.
    pub fn cleanup(&self) {
        let filter = format!("label=run={}", self.run_id);
        if let Ok(ids) = docker(&["ps", "-aq", "--no-trunc", "--filter", &filter]) {
            for id in ids.lines() {
                self.remove(id);
            }
        }
        let _ = docker(&["rmi", "-f", &self.image]);
    }
}

/// Removes the containers and images of earlier demos whose process is gone (a crash, a
/// SIGKILL): a running demo's are left alone.
fn remove_leftovers() {
    let alive = |pid: &str| Path::new(&format!("/proc/{pid}")).exists();
    let format = format!("{{{{.ID}}}} {{{{.Label \"{PID_LABEL}\"}}}}");
    if let Ok(out) = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={PID_LABEL}"),
        "--format",
        &format,
    ]) {
        for line in out.lines() {
            if let Some((id, pid)) = line.split_once(' ')
                && !alive(pid)
            {
                let _ = docker(&["rm", "-f", id]);
            }
        }
    }
    if let Ok(out) = docker(&["images", IMAGE, "--format", "{{.Tag}}"]) {
        for pid in out
            .lines()
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
        {
            if !alive(pid) {
                let _ = docker(&["rmi", "-f", &format!("{IMAGE}:{pid}")]);
            }
        }
    }
}

/// The shared libraries `exe` loads, the dynamic loader among them, as `ldd` lists them.
fn shared_libraries(exe: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut child = Command::new("ldd")
        .arg(exe)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("running ldd to find the binary's libraries")?;
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out)?;
    }
    let _ = child.wait();
    Ok(out
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.into())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_libraries_of_this_test_binary_or_none_when_static() {
        let exe = std::env::current_exe().unwrap();
        let libs = shared_libraries(&exe).unwrap();
        let ldd = Command::new("ldd").arg(&exe).output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&ldd.stdout),
            String::from_utf8_lossy(&ldd.stderr)
        );
        if said.contains("not a dynamic executable") || said.contains("statically linked") {
            // A static build (scripts/test.sh makes one) loads nothing.
            assert!(libs.is_empty(), "{libs:?}");
        } else {
            assert!(
                libs.iter().any(|l| l.to_string_lossy().contains("libc.so")),
                "{libs:?}"
            );
        }
        assert!(
            libs.iter().all(|l| l.is_absolute() && l.exists()),
            "{libs:?}"
        );
    }
}
