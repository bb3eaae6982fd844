//! Containers for tests, on the real Docker engine, with nothing pulled.
//!
//! A [`Lab`] makes its own image from nothing but Debian's static busybox
//! (`busybox-static`, which `scripts/test.sh` installs), labels the image and every container
//! with a run id unique to the test ([`RUN_LABEL`]), and removes all of them when dropped,
//! whether the test passed or panicked. Tests select containers only through that label.

use std::process::{Command, Stdio};

/// The label that ties a container or an image to one test run.
pub const RUN_LABEL: &str = "simian-test.run";

/// Runs the docker CLI; its standard output, trimmed.
///
/// # Panics
/// When the command fails: the test cannot go on.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One test's image and containers.
pub struct Lab {
    /// The run id, the value of [`RUN_LABEL`] on everything the lab makes.
    pub run: String,
    /// The image tag.
    pub image: String,
    /// Every container started, removed on drop.
    pub containers: Vec<String>,
    /// Every network made, removed on drop (after the containers).
    pub networks: Vec<String>,
}

impl Lab {
    /// Builds the lab's image; `tag` names the test.
    ///
    /// # Panics
    /// Without `/bin/busybox` (Debian's busybox-static) or a Docker engine.
    pub fn new(tag: &str) -> Lab {
        let run = format!(
            "{}-{}-{}",
            tag.replace('_', "-").to_ascii_lowercase(),
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond() % 1_000_000_000_000
        );
        let image = format!("simian-test-busybox:{run}");
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir(dir.path().join("bin")).expect("a bin folder");
        std::fs::copy("/bin/busybox", dir.path().join("bin/busybox"))
            .expect("/bin/busybox from Debian's busybox-static (scripts/test.sh installs it)");
        // `docker import` of a tarball makes a one-layer image without the builder's cache,
        // which tests building at the same time would share, and remove from each other.
        let tarball = dir.path().join("image.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(dir.path())
            .arg("-cf")
            .arg(&tarball)
            .arg("bin")
            .status()
            .expect("run tar");
        assert!(status.success(), "tar of the image's files");
        let lab = Lab {
            image,
            containers: Vec::new(),
            networks: Vec::new(),
            run,
        };
        let label = format!("LABEL {RUN_LABEL}={}", lab.run);
        docker(&[
            "import",
            "--change",
            "ENTRYPOINT [\"/bin/busybox\"]",
            "--change",
            &label,
            &tarball.to_string_lossy(),
            &lab.image,
        ]);
        lab
    }

    /// Starts `busybox sleep 3600` with `labels` and this run's label; its full id.
    pub fn start(&mut self, labels: &[(&str, &str)]) -> String {
        self.start_with(labels, &self.run.clone(), &[])
    }

    /// As [`start`](Self::start), but labelled with another run id (outside a selector on
    /// this run); still removed with this lab.
    pub fn start_with_run(&mut self, labels: &[(&str, &str)], run: &str) -> String {
        self.start_with(labels, run, &[])
    }

    /// As [`start`](Self::start), with the run id `run` and more `docker run` options
    /// (`--init`, for a PID 1 that passes SIGTERM on).
    pub fn start_with(&mut self, labels: &[(&str, &str)], run: &str, options: &[&str]) -> String {
        self.start_command(labels, run, options, &["sleep", "3600"])
    }

    /// As [`start_with`](Self::start_with), running busybox `command` (for example
    /// `["httpd", "-f", "-p", "8080", "-h", "/bin"]`).
    pub fn start_command(
        &mut self,
        labels: &[(&str, &str)],
        run: &str,
        options: &[&str],
        command: &[&str],
    ) -> String {
        let mut args: Vec<String> = vec!["run".into(), "-d".into()];
        args.extend(options.iter().map(|o| o.to_string()));
        for (k, v) in labels.iter().copied().chain([(RUN_LABEL, run)]) {
            args.push("--label".into());
            args.push(format!("{k}={v}"));
        }
        args.push(self.image.clone());
        args.extend(command.iter().map(|c| c.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let id = docker(&refs);
        assert_eq!(id.len(), 64, "a full container id: {id}");
        self.containers.push(id.clone());
        id
    }

    /// Makes a bridge network labelled with this run, with a /24 subnet of its own (so
    /// containers can be given fixed addresses on it); returns its name and the subnet's
    /// first three octets (`"10.231.7"`).
    ///
    /// # Panics
    /// When no free subnet is found in 40 tries.
    pub fn network(&mut self, suffix: &str) -> (String, String) {
        let name = format!("{}-{suffix}", self.run);
        let label = format!("{RUN_LABEL}={}", self.run);
        let seed = jiff::Timestamp::now().subsec_nanosecond().unsigned_abs() as usize;
        for attempt in 0..40 {
            let n = seed.wrapping_add(attempt * 7919);
            let prefix = format!("10.{}.{}", 200 + n % 50, (n / 50) % 250);
            let subnet = format!("{prefix}.0/24");
            let made = Command::new("docker")
                .args([
                    "network", "create", "--label", &label, "--subnet", &subnet, &name,
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run the docker CLI");
            if made.success() {
                self.networks.push(name.clone());
                return (name, prefix);
            }
        }
        panic!("no free /24 subnet for a test network");
    }

    /// Runs `command` inside container `id`; true when it exits 0.
    pub fn exec_ok(&self, id: &str, command: &[&str]) -> bool {
        Command::new("docker")
            .arg("exec")
            .arg(id)
            .args(command)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run the docker CLI")
            .success()
    }

    /// Whether the container runs.
    pub fn running(&self, id: &str) -> bool {
        docker(&["inspect", "-f", "{{.State.Running}}", id]) == "true"
    }

    /// Whether the container is paused.
    pub fn paused(&self, id: &str) -> bool {
        docker(&["inspect", "-f", "{{.State.Paused}}", id]) == "true"
    }

    /// The ids of this run's containers that are running.
    pub fn running_ids(&self) -> Vec<String> {
        let filter = format!("label={RUN_LABEL}={}", self.run);
        let out = docker(&["ps", "-q", "--no-trunc", "--filter", &filter]);
        out.lines().map(str::to_string).collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for id in &self.containers {
            let _ = Command::new("docker")
                .args(["rm", "-f", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for network in &self.networks {
            let _ = Command::new("docker")
                .args(["network", "rm", network])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
