//! Benchmark of the aws provider's discovery: 1,000 Auto Scaling groups of 10 instances each,
//! served by moto's AWS emulator (`simian_testkit::aws`, `moto[server]` from PyPI) on
//! 127.0.0.1, over real AWS SDK calls.
//!
//! Measured: time per discovery (every group listed, page by page, then named and grouped into
//! instances), requests per discovery, and the benchmark process's memory; then the naming and
//! grouping alone, in process, on the same 1,000 groups. The peer in the same run is boto3, the
//! AWS SDK for Python, paging through the same groups from the same emulator. The emulator
//! answers both, so most of each discovery's time is the emulator's.
//!
//! ```sh
//! cargo bench -p simian-providers --bench aws
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use simian_core::Provider;
use simian_providers::aws::fleet;
use simian_providers::{AwsConfig, AwsProvider};
use simian_testkit::aws::Moto;
use simian_testkit::measure::{median_and_range, own_memory_kb};

const GROUPS: usize = 1000;
const SIZE: usize = 10;
const DISCOVERIES: usize = 5;
const REGION: &str = "us-east-1";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "machine: {} cores; {GROUPS} Auto Scaling groups of {SIZE} instances in {REGION}, served by moto",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let moto = Moto::start();
    let started = Instant::now();
    moto.many(REGION, "web-prod", GROUPS, SIZE, &[("team", "core")]);
    println!(
        "fixture: {GROUPS} groups created in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let mut config = AwsConfig::new("prod", &[REGION]);
    config.endpoint_url = Some(moto.url());
    config.static_credentials = Some(("testing".into(), "testing".into()));
    config.apps = ["web".to_string()].into();
    let provider = AwsProvider::new("aws", config.clone()).unwrap();
    let rss_before = own_memory_kb("VmRSS:");
    assert_eq!(provider.instances().unwrap().len(), GROUPS * SIZE);
    let mut times = Vec::new();
    let mut calls = 0;
    for _ in 0..DISCOVERIES {
        let before = provider.api_calls();
        let started = Instant::now();
        let instances = provider.instances().unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        calls = provider.api_calls() - before;
        assert_eq!(instances.len(), GROUPS * SIZE);
    }
    let (m, lo, hi) = median_and_range(times);
    println!(
        "simian aws provider: discover {} instances of {GROUPS} groups: median {m:.0} ms (range {lo:.0}-{hi:.0}, {DISCOVERIES} discoveries); {calls} DescribeAutoScalingGroups calls per discovery; RSS {} MB before the first, {} MB after, peak {} MB",
        GROUPS * SIZE,
        rss_before / 1024,
        own_memory_kb("VmRSS:") / 1024,
        own_memory_kb("VmHWM:") / 1024
    );

    // Simian's own share: naming, opt-in and eligibility over the same groups, in process.
    let groups = provider.groups().unwrap();
    let rules = fleet::Rules {
        apps: config.apps.clone(),
        opt_in_tag: config.opt_in_tag.clone(),
        account: config.account.clone(),
        single_instance_apps: Default::default(),
    };
    let mut times = Vec::new();
    for _ in 0..21 {
        let started = Instant::now();
        let (instances, _) = fleet::instances(&groups, &rules);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(instances.len(), GROUPS * SIZE);
    }
    let (m, lo, hi) = median_and_range(times);
    println!(
        "simian aws provider, naming and grouping alone: median {m:.2} ms (range {lo:.2}-{hi:.2}, 21 runs)"
    );

    // The peer: boto3 paging through the same groups.
    let script = format!(
        "import time, resource, boto3\n\
         c = boto3.client('autoscaling', endpoint_url={url:?}, region_name={REGION:?}, aws_access_key_id='testing', aws_secret_access_key='testing')\n\
         def discovery():\n\
         \x20   n = 0\n\
         \x20   for page in c.get_paginator('describe_auto_scaling_groups').paginate(PaginationConfig={{'PageSize': 100}}):\n\
         \x20       n += sum(len(g['Instances']) for g in page['AutoScalingGroups'])\n\
         \x20   return n\n\
         assert discovery() == {total}\n\
         ts = []\n\
         for _ in range({DISCOVERIES}):\n\
         \x20   t = time.perf_counter(); discovery(); ts.append((time.perf_counter() - t) * 1000)\n\
         ts.sort()\n\
         print(f'boto3 (list only, no naming or grouping): median {{ts[len(ts) // 2]:.0f}} ms (range {{ts[0]:.0f}}-{{ts[-1]:.0f}}, {DISCOVERIES} discoveries); peak RSS {{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}} MB')\n",
        url = moto.url(),
        total = GROUPS * SIZE
    );
    match std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
    {
        Ok(out) if out.status.success() => print!("{}", String::from_utf8_lossy(&out.stdout)),
        Ok(out) => println!(
            "boto3: not measured ({})",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ),
        Err(e) => println!("boto3: not measured ({e})"),
    }
}
