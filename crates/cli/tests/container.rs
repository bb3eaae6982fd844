//! The container image: the repository's Dockerfile built by the real Docker engine around
//! the statically linked binary (nothing pulled: FROM scratch), then run: as a non-root
//! user, `simian serve` answers on a port published on 127.0.0.1, refuses to start beyond
//! loopback without a token, writes its store in the image's state folder, and stops cleanly
//! (exit 0) on `docker stop`.
//!
//! The binary is the one under test: `scripts/test.sh` builds the whole suite statically
//! linked (`-C target-feature=+crt-static`, with an explicit `--target`), as the Dockerfile
//! asks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use simian_testkit::docker::docker;

const TOKEN: &str = "container-token-9e1d";

/// The repository's root: the build context.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Images and containers of this run, removed however the test ends.
struct Cleanup {
    image: String,
    containers: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", c]).output();
        }
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

/// True for an ELF executable without an interpreter (`PT_INTERP`): nothing to load at run
/// time.
fn is_static(path: &Path) -> bool {
    let elf = std::fs::read(path).unwrap();
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 {
        return false;
    }
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap());
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]);
    let (table, size, count) = (u64_at(0x20) as usize, u16_at(0x36) as usize, u16_at(0x38));
    const PT_INTERP: u32 = 3;
    !(0..usize::from(count)).any(|i| {
        let at = table + i * size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == PT_INTERP
    })
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().unwrap()
}

#[test]
#[ignore = "needs the Docker engine and a static build: scripts/test.sh makes one (then pass --include-ignored)"]
fn the_image_builds_from_scratch_and_serves_as_a_non_root_user() {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_simian"))
        .canonicalize()
        .unwrap();
    assert!(
        is_static(&binary),
        "{} is linked dynamically: a FROM scratch image needs the static build that \
         scripts/test.sh makes (RUSTFLAGS=\"-C target-feature=+crt-static\" and --target)",
        binary.display()
    );
    let root = root().canonicalize().unwrap();
    let relative = binary
        .strip_prefix(&root)
        .expect("the static binary is inside the repository (the build context)")
        .to_str()
        .unwrap()
        .to_string();
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_millisecond()
    );
    let label = format!("{}={run_id}", simian_testkit::docker::RUN_LABEL);
    let image = format!("simian-test-image:{run_id}");
    let mut cleanup = Cleanup {
        image: image.clone(),
        containers: Vec::new(),
    };

    // Built with the repository's own Dockerfile and .dockerignore.
    let built = Command::new("docker")
        .args(["build", "--quiet", "--label", &label, "-t", &image])
        .args(["--build-arg", &format!("BINARY={relative}")])
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    assert_eq!(
        docker(&["image", "inspect", "--format", "{{.Config.User}}", &image]).trim(),
        "65532:65532"
    );
    // FROM scratch: the binary, the default configuration and the state folder, nothing else.
    let size: u64 = docker(&["image", "inspect", "--format", "{{.Size}}", &image])
        .trim()
        .parse()
        .unwrap();
    let binary_size = std::fs::metadata(&binary).unwrap().len();
    assert!(
        size < binary_size + 64 * 1024,
        "the image ({size} bytes) holds little beside the binary ({binary_size} bytes)"
    );
    let version = run(&["run", "--rm", "--label", &label, &image, "--version"]);
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));

    // Its default: serve beyond loopback, which needs a token; without one it refuses (2).
    let refused = run(&["run", "--rm", "--label", &label, &image]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("SIMIAN_API_TOKEN"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // With a token: serving on a port published on 127.0.0.1 only.
    let started = docker(&[
        "run",
        "-d",
        "--label",
        &label,
        "-e",
        &format!("SIMIAN_API_TOKEN={TOKEN}"),
        "-p",
        "127.0.0.1::8080",
        &image,
    ]);
    let id = started.trim().to_string();
    cleanup.containers.push(id.clone());
    let port = docker(&["port", &id, "8080/tcp"]);
    let address = port.lines().next().unwrap().trim().to_string();
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    let base = format!("http://{address}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = agent.get(&format!("{base}/readyz")).call()
            && r.status() == 200
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the container never became ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let top = docker(&["top", &id, "-eo", "uid,pid,args"]);
    assert!(
        top.lines()
            .skip(1)
            .all(|l| l.trim_start().starts_with("65532")),
        "every process of the container runs as 65532: {top}"
    );
    // A change written to the store in the state folder, read back.
    let mut r = agent
        .put(&format!("{base}/api/v1/kill-switch"))
        .header("authorization", &format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .send(r#"{"enabled": false, "changed_by": "container test"}"#)
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "{}",
        r.body_mut().read_to_string().unwrap()
    );
    let mut page = agent.get(&format!("{base}/kill-switch")).call().unwrap();
    let html = page.body_mut().read_to_string().unwrap();
    assert!(
        html.contains("container test"),
        "the dashboard shows the change"
    );

    // docker stop sends SIGTERM: a clean exit, well before docker's 10 s SIGKILL.
    let stopping = Instant::now();
    docker(&["stop", &id]);
    assert!(stopping.elapsed() < Duration::from_secs(8));
    assert_eq!(
        docker(&["inspect", "--format", "{{.State.ExitCode}}", &id]).trim(),
        "0"
    );
}
