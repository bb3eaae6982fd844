//! The manifests of `deploy/kubernetes/` against the Kubernetes API's schemas, as far as a
//! machine without a cluster can check them: every document is read into k8s-openapi's type
//! for its kind and written back, and must come back unchanged (a misspelt or misplaced field
//! is dropped by the typed read, so the two differ); the ConfigMap's simian.toml passes
//! `simian config check`; the ClusterRole grants exactly what the provider uses; and the
//! Deployment runs `simian serve`, mounts the config, the store and the API token where the
//! command and the config say, probes the API's health routes, and the Service fronts it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::collections::BTreeSet;
use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use util::Sandbox;

fn manifests() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", f.display()));
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            docs.into_iter().map(move |d| (name.clone(), d))
        })
        .collect()
}

/// Reads `doc` as `T` and back; what does not survive is not in the schema.
fn round_trip<T: DeserializeOwned + Serialize>(file: &str, doc: &Value) {
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{file}: {} does not fit the schema: {e}", doc["kind"]));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back, doc,
        "{file}: a field of this {} is not in the Kubernetes schema (misspelt or misplaced)",
        doc["kind"]
    );
}

#[test]
fn every_manifest_fits_the_kubernetes_schema() {
    let mut kinds = BTreeSet::new();
    for (file, doc) in manifests() {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "Namespace" => round_trip::<Namespace>(&file, &doc),
            "ServiceAccount" => round_trip::<ServiceAccount>(&file, &doc),
            "ClusterRole" => round_trip::<ClusterRole>(&file, &doc),
            "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(&file, &doc),
            "ConfigMap" => round_trip::<ConfigMap>(&file, &doc),
            "PersistentVolumeClaim" => round_trip::<PersistentVolumeClaim>(&file, &doc),
            "Deployment" => round_trip::<Deployment>(&file, &doc),
            "Service" => round_trip::<Service>(&file, &doc),
            other => panic!("{file}: no schema check for kind {other:?}: add one"),
        }
        kinds.insert(kind);
    }
    for wanted in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
    ] {
        assert!(kinds.contains(wanted), "no {wanted} in deploy/kubernetes");
    }
}

fn find<'a>(docs: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    &docs
        .iter()
        .find(|(_, d)| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .1
}

#[test]
fn the_cluster_role_grants_exactly_what_the_provider_uses() {
    let docs = manifests();
    let grants = |role: &Value| -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for rule in role["rules"].as_array().unwrap() {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        out.insert(format!(
                            "{}/{} {}",
                            group.as_str().unwrap(),
                            resource.as_str().unwrap(),
                            verb.as_str().unwrap()
                        ));
                    }
                }
            }
        }
        out
    };
    let evict: BTreeSet<String> = [
        "/pods get",
        "/pods list",
        "apps/replicasets list",
        "/nodes list",
        "/pods/eviction create",
        "/events create",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(grants(find(&docs, "ClusterRole", "simian")), evict);
    assert_eq!(
        grants(find(&docs, "ClusterRole", "simian-delete")),
        BTreeSet::from(["/pods delete".to_string()])
    );
    assert_eq!(
        grants(find(&docs, "ClusterRole", "simian-isolate")),
        BTreeSet::from([
            "networking.k8s.io/networkpolicies create".to_string(),
            "networking.k8s.io/networkpolicies get".to_string(),
            "networking.k8s.io/networkpolicies delete".to_string(),
            "/pods patch".to_string(),
        ])
    );
    for binding in ["simian", "simian-delete", "simian-isolate"] {
        let b = find(&docs, "ClusterRoleBinding", binding);
        assert_eq!(b["roleRef"]["name"], binding);
        assert_eq!(b["subjects"][0]["name"], "simian");
        assert_eq!(b["subjects"][0]["namespace"], "simian");
    }
}

#[test]
fn the_deployment_serves_on_the_configmap_the_store_volume_and_the_token() {
    let docs = manifests();
    let config = find(&docs, "ConfigMap", "simian-config");
    let toml = config["data"]["simian.toml"].as_str().unwrap();
    // The config in the manifest is a valid simian.toml.
    let s = Sandbox::new();
    s.write("simian.toml", toml);
    s.run(&["config", "check", "--offline"]).expect(0);
    let store_url = toml
        .lines()
        .find_map(|l| l.trim().strip_prefix("url = "))
        .unwrap()
        .trim_matches('"');
    let store_dir = Path::new(store_url.strip_prefix("sqlite://").unwrap())
        .parent()
        .unwrap()
        .to_string_lossy()
        .to_string();

    let d = find(&docs, "Deployment", "simian");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "simian");
    let c = &pod["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "serve");
    let config_file = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    let mounts = c["volumeMounts"].as_array().unwrap();
    let mounted = |path: &str| {
        mounts
            .iter()
            .find(|m| m["mountPath"] == path)
            .map(|m| m["name"].as_str().unwrap().to_string())
    };
    let config_dir = Path::new(config_file)
        .parent()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let config_volume = mounted(&config_dir).expect("the config directory is mounted");
    let store_volume = mounted(&store_dir).expect("the store directory is mounted");
    let volumes = pod["volumes"].as_array().unwrap();
    let volume = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap();
    assert_eq!(volume(&config_volume)["configMap"]["name"], "simian-config");
    assert_eq!(
        volume(&store_volume)["persistentVolumeClaim"]["claimName"],
        "simian-store"
    );
    // Simian recognises its own pod by HOSTNAME and this namespace, and never kills it.
    let env = c["env"].as_array().unwrap();
    assert!(env.iter().any(|e| e["name"] == "POD_NAMESPACE"
        && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"));
    // The API: the port the config listens on, the probes on it, the Service in front, and
    // the token from its Secret where the config reads it.
    let quoted = |key: &str| {
        toml.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap()
            .split('"')
            .nth(1)
            .unwrap()
            .to_string()
    };
    let listen = quoted("listen = ");
    let port: u16 = listen.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(c["ports"][0]["containerPort"], port);
    assert_eq!(c["ports"][0]["name"], "http");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");
    let service = find(&docs, "Service", "simian");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(
        service["spec"]["selector"],
        d["spec"]["selector"]["matchLabels"]
    );
    let token_file = quoted("token_file = ");
    let token_dir = Path::new(&token_file)
        .parent()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let token_volume = mounted(&token_dir).expect("the token's directory is mounted");
    assert_eq!(
        volume(&token_volume)["secret"]["secretName"],
        "simian-api-token"
    );
    assert_eq!(Path::new(&token_file).file_name().unwrap(), "token");
    // One writer for SQLite.
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
}

/// `deploy/systemd/simian.service` runs `simian serve`, and systemd's own checker finds
/// nothing to say about it (an unknown or misplaced key is a warning, which fails this).
#[test]
fn the_systemd_unit_runs_serve_and_verifies_cleanly() {
    let unit_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/systemd/simian.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    assert!(exec.starts_with("/usr/local/bin/simian serve"), "{exec}");
    assert!(
        unit.contains("LoadCredential=api-token:"),
        "the token as a credential"
    );
    // The checker wants the program to exist: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("simian.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/simian", env!("CARGO_BIN_EXE_simian")),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze (Debian's systemd package; scripts/test.sh installs it)");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.trim().is_empty(),
        "systemd-analyze has something to say:\n{said}"
    );
}
