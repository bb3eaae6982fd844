//! Benchmark of the Kubernetes provider's listing: 10,000 pods in 500 namespaces (four
//! Deployments of five pods in each), 2,000 ReplicaSets and 50 nodes in three zones, served
//! by a local HTTP server that replays recorded list responses page by page (`limit` and
//! `continue`, 500 items a page, as an API server pages them), over real kube-rs calls.
//!
//! Measured: time per listing (pods, replica sets and nodes listed, then grouped into
//! instances), requests per listing, and the benchmark process's memory before and after. The
//! peer in the same run is the official Kubernetes Python client (`kubernetes` on PyPI, when
//! installed), listing and decoding the same pods from the same server.
//!
//! ```sh
//! cargo bench -p simian-providers --bench kubernetes
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use simian_core::Provider;
use simian_providers::{KubernetesConfig, KubernetesProvider};
use simian_testkit::measure::{median_and_range, own_memory_kb};

const NAMESPACES: usize = 500;
const DEPLOYMENTS_PER_NAMESPACE: usize = 4;
const PODS_PER_DEPLOYMENT: usize = 5;
const NODES: usize = 50;
const PAGE: usize = 500;
const LISTINGS: usize = 9;

/// Every page of every list the server answers: path -> pages, each a JSON body.
type Pages = HashMap<&'static str, Vec<String>>;

fn pages(kind: &str, items: Vec<Value>) -> Vec<String> {
    let chunks: Vec<&[Value]> = items.chunks(PAGE).collect();
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let cont = if i + 1 < chunks.len() {
                (i + 1).to_string()
            } else {
                String::new()
            };
            json!({"apiVersion": "v1", "kind": format!("{kind}List"),
                "metadata": {"resourceVersion": "1", "continue": cont}, "items": chunk})
            .to_string()
        })
        .collect()
}

fn cluster() -> Pages {
    let (mut pods, mut replica_sets, mut nodes) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..NODES {
        nodes.push(json!({"metadata": {"name": format!("node-{n}"), "labels": {
            "topology.kubernetes.io/region": "us-west-2",
            "topology.kubernetes.io/zone": format!("us-west-2{}", ["a", "b", "c"][n % 3])}}}));
    }
    for ns in 0..NAMESPACES {
        let namespace = format!("team-{ns}");
        for d in 0..DEPLOYMENTS_PER_NAMESPACE {
            let rs = format!("svc{d}-7d9f");
            replica_sets.push(json!({"metadata": {"name": rs, "namespace": namespace,
                "uid": format!("rs-{ns}-{d}"), "ownerReferences": [{"apiVersion": "apps/v1",
                "kind": "Deployment", "name": format!("svc{d}"), "uid": format!("dep-{ns}-{d}"),
                "controller": true}]}}));
            for p in 0..PODS_PER_DEPLOYMENT {
                pods.push(json!({
                    "metadata": {"name": format!("{rs}-{p}"), "namespace": namespace,
                        "uid": format!("pod-{ns}-{d}-{p}"), "creationTimestamp": "2026-01-01T00:00:00Z",
                        "labels": {"simian.io/app": format!("svc{d}"), "simian.io/stack": "prod",
                            "pod-template-hash": "7d9f", "team": namespace},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                            "name": rs, "uid": format!("rs-{ns}-{d}"), "controller": true}]},
                    "spec": {"nodeName": format!("node-{}", (ns * 7 + d * 3 + p) % NODES),
                        "containers": [{"name": "main", "image": "registry.example/svc:1.2.3",
                            "ports": [{"containerPort": 8080}],
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
                    "status": {"phase": "Running", "podIP": "10.0.0.1",
                        "conditions": [{"type": "Ready", "status": "True"},
                            {"type": "ContainersReady", "status": "True"}]}}));
            }
        }
    }
    HashMap::from([
        ("/api/v1/pods", pages("Pod", pods)),
        (
            "/apis/apps/v1/replicasets",
            pages("ReplicaSet", replica_sets),
        ),
        ("/api/v1/nodes", pages("Node", nodes)),
    ])
}

/// Serves `pages` on 127.0.0.1 until the process ends; returns the port and the request
/// counter.
fn serve(pages: Pages) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let pages = Arc::new(pages);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let pages = pages.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0usize;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; length];
                    let _ = reader.read_exact(&mut body);
                    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                    let page: usize = query
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("continue="))
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0);
                    let (status, text) = match pages.get(path).and_then(|p| p.get(page)) {
                        Some(body) => ("200 OK", body.as_str()),
                        None => (
                            "404 Not Found",
                            r#"{"kind":"Status","code":404,"reason":"NotFound"}"#,
                        ),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        text.len()
                    );
                    if conn.write_all(head.as_bytes()).is_err()
                        || conn.write_all(text.as_bytes()).is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let pods = NAMESPACES * DEPLOYMENTS_PER_NAMESPACE * PODS_PER_DEPLOYMENT;
    println!(
        "machine: {} cores; {pods} pods in {NAMESPACES} namespaces, {} replica sets, {NODES} nodes; pages of {PAGE}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        NAMESPACES * DEPLOYMENTS_PER_NAMESPACE
    );
    let port = serve(cluster());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        simian_testkit::kube::kubeconfig_text(&format!("http://127.0.0.1:{port}")),
    )
    .unwrap();
    let provider = KubernetesProvider::new(
        "k8s",
        KubernetesConfig {
            kubeconfig: Some(kubeconfig),
            ..KubernetesConfig::default()
        },
    )
    .unwrap();
    let rss_before = own_memory_kb("VmRSS:");
    let first = provider.instances().unwrap();
    assert_eq!(first.len(), pods, "every pod is an instance");
    drop(first);
    let mut times = Vec::new();
    let mut calls = 0;
    for _ in 0..LISTINGS {
        let before = provider.api_calls();
        let started = Instant::now();
        let instances = provider.instances().unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        calls = provider.api_calls() - before;
        assert_eq!(instances.len(), pods);
    }
    let (m, lo, hi) = median_and_range(times);
    println!(
        "simian kubernetes provider: list and group {pods} pods: median {m:.0} ms (range {lo:.0}-{hi:.0}, {LISTINGS} listings); {calls} requests per listing; RSS {} MB before the first listing, {} MB after, peak {} MB",
        rss_before / 1024,
        own_memory_kb("VmRSS:") / 1024,
        own_memory_kb("VmHWM:") / 1024
    );

    // The peer: the official Python client, listing and decoding the same pods.
    let script = format!(
        "import time, resource, kubernetes\n\
         kubernetes.config.load_kube_config(config_file={:?})\n\
         v1 = kubernetes.client.CoreV1Api()\n\
         def listing():\n\
         \x20   items, cont = [], None\n\
         \x20   while True:\n\
         \x20       page = v1.list_pod_for_all_namespaces(limit={PAGE}, _continue=cont)\n\
         \x20       items += page.items\n\
         \x20       cont = page.metadata._continue\n\
         \x20       if not cont: return items\n\
         assert len(listing()) == {pods}\n\
         ts = []\n\
         for _ in range(3):\n\
         \x20   t = time.perf_counter(); n = len(listing()); ts.append((time.perf_counter() - t) * 1000)\n\
         ts.sort()\n\
         print(f'kubernetes python client (pods only, no replica sets or nodes): median {{ts[1]:.0f}} ms (range {{ts[0]:.0f}}-{{ts[2]:.0f}}, 3 listings); peak RSS {{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}} MB')\n",
        dir.path().join("kubeconfig").display().to_string()
    );
    match std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
    {
        Ok(out) if out.status.success() => print!("{}", String::from_utf8_lossy(&out.stdout)),
        Ok(out) => println!(
            "kubernetes python client: not measured ({})",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ),
        Err(e) => println!("kubernetes python client: not measured ({e})"),
    }
}
