//! Benchmark of the Docker provider against the real engine, beside the Docker CLI and a raw
//! API request on the same containers in the same run:
//!
//! 1. listing 200 labelled running containers: time per listing, and requests sent to the
//!    engine per listing (one, whatever the count), against `docker ps` with the same
//!    filters and `curl` of the same API request;
//! 2. from the decision to a verified stop of one container (re-read, stop, inspect until
//!    stopped), against `docker stop` of a container started the same way.
//!
//! Containers run busybox under `--init`, so SIGTERM stops them at once; everything is built
//! from nothing but busybox and removed at the end (`simian_testkit::docker`).
//!
//! ```sh
//! cargo bench -p simian-providers --bench docker
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use simian_core::Provider;
use simian_providers::{DockerConfig, DockerProvider};
use simian_testkit::docker::{Lab, RUN_LABEL};

const CONTAINERS: usize = 200;
const LISTINGS: usize = 30;
const STOPS: usize = 10;

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label:<40} median {:>8.2} ms   min {:>8.2} ms   max {:>8.2} ms   ({} samples)",
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
        samples.len()
    );
}

fn timed(mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn main() {
    let mut lab = Lab::new("bench-docker");
    let run = lab.run.clone();
    let started = Instant::now();
    for n in 0..CONTAINERS {
        let detail = format!("c{}", n % 20);
        lab.start_with(
            &[("simian.app", "bench"), ("simian.detail", &detail)],
            &run,
            &["--init"],
        );
    }
    println!(
        "started {CONTAINERS} containers in {:.1} s; engine {}",
        started.elapsed().as_secs_f64(),
        simian_testkit::docker::docker(&[
            "version",
            "--format",
            "{{.Server.Version}} (API {{.Server.APIVersion}})"
        ])
    );
    let provider = DockerProvider::new(
        "bench",
        DockerConfig {
            grace_period: Duration::from_secs(10),
            selector: BTreeMap::from([(RUN_LABEL.to_string(), run.clone())]),
            ..DockerConfig::default()
        },
    )
    .unwrap();
    assert_eq!(provider.instances().unwrap().len(), CONTAINERS, "warm-up");

    // 1. Listing.
    let before = provider.api_calls();
    let mut simian = Vec::new();
    let mut cli = Vec::new();
    let mut raw = Vec::new();
    let label_filter = format!("label={RUN_LABEL}={run}");
    let api_filter =
        format!("{{\"label\":[\"simian.app\",\"{RUN_LABEL}={run}\"],\"status\":[\"running\"]}}");
    let url = format!(
        "http://localhost/containers/json?filters={}",
        api_filter
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            })
            .collect::<String>()
    );
    for _ in 0..LISTINGS {
        simian.push(timed(|| {
            assert_eq!(provider.instances().unwrap().len(), CONTAINERS);
        }));
        cli.push(timed(|| {
            let out = Command::new("docker")
                .args([
                    "ps",
                    "-q",
                    "--no-trunc",
                    "--filter",
                    "label=simian.app",
                    "--filter",
                    &label_filter,
                ])
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).lines().count(),
                CONTAINERS
            );
        }));
        raw.push(timed(|| {
            let out = Command::new("curl")
                .args(["-s", "--unix-socket", "/var/run/docker.sock", &url])
                .output()
                .unwrap();
            assert!(out.status.success());
        }));
    }
    let calls = provider.api_calls() - before;
    println!("\nlisting {CONTAINERS} labelled containers, {LISTINGS} rounds:");
    summary("simian (DockerProvider::instances)", simian);
    summary("docker ps (the CLI, same filters)", cli);
    summary("curl of the same API request", raw);
    println!(
        "requests to the engine per simian listing: {:.2}",
        calls as f64 / LISTINGS as f64
    );

    // 2. Decision to verified stop, alternating simian and docker stop.
    let mut instances = provider.instances().unwrap();
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    let mut simian = Vec::new();
    let mut cli = Vec::new();
    for pair in instances.chunks(2).take(STOPS) {
        simian.push(timed(|| {
            let outcome = provider.terminate(&pair[0], 1).unwrap();
            assert!(
                matches!(outcome, simian_core::KillOutcome::Killed { .. }),
                "{outcome:?}"
            );
        }));
        cli.push(timed(|| {
            let out = Command::new("docker")
                .args(["stop", "-t", "10", pair[1].id.as_str()])
                .output()
                .unwrap();
            assert!(out.status.success());
        }));
    }
    println!(
        "\ndecision to verified stop of one container (--init, SIGTERM honoured), {STOPS} each:"
    );
    summary("simian (re-read, stop, verify)", simian);
    summary("docker stop -t 10", cli);
}
