//! The Kubernetes API emulator of the tests: `kube/emulator.py` (kmock from PyPI, with pod
//! eviction and delete preconditions added; its module doc says what it does and does not
//! do), started on 127.0.0.1 by [`Emulator::start`] and stopped when dropped, with a
//! kubeconfig that points at it and helpers that play the controllers: they create the
//! pods, replica sets, nodes and budgets a test needs, as a ReplicaSet controller would.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

/// A kubeconfig whose one context, `test-cluster`, points at `server` (a token user).
pub fn kubeconfig_text(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: test-cluster\nclusters:\n- name: emulator\n  cluster:\n    server: {server}\ncontexts:\n- name: test-cluster\n  context:\n    cluster: emulator\n    user: tester\nusers:\n- name: tester\n  user:\n    token: test-token\n"
    )
}

/// A running emulator.
pub struct Emulator {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    agent: ureq::Agent,
}

/// Pod UIDs unique within the test process.
static NEXT_UID: AtomicU64 = AtomicU64::new(1);

/// What a test pod looks like.
#[derive(Clone, Debug)]
pub struct PodSpec<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
    /// Labels.
    pub labels: Vec<(&'a str, &'a str)>,
    /// The controlling owner (kind, name), if any.
    pub owner: Option<(&'a str, &'a str)>,
    /// The node it runs on.
    pub node: &'a str,
    /// Running and Ready.
    pub ready: bool,
    /// Seconds since it was created.
    pub age_secs: i64,
}

impl Emulator {
    /// Starts the emulator.
    ///
    /// # Panics
    /// Without python3 and kmock (`scripts/test.sh` installs kmock), or if it does not start.
    pub fn start() -> Emulator {
        crate::require_python_modules(&["kmock"], "pip install kmock");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("kube/emulator.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg("0")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the emulator");
        let port = crate::ready_port(
            &mut BufReader::new(child.stdout.take().expect("piped stdout")),
            "Kubernetes API emulator",
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .new_agent();
        let emulator = Emulator {
            child,
            port,
            dir,
            agent,
        };
        std::fs::write(emulator.kubeconfig(), emulator.kubeconfig_text())
            .expect("the kubeconfig is written");
        emulator
    }

    /// The API server's URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A kubeconfig file whose context `test-cluster` points at the emulator.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn kubeconfig_text(&self) -> String {
        kubeconfig_text(&self.url())
    }

    /// Sends `method` to `path` with `body`; returns the status and the JSON answer.
    ///
    /// # Panics
    /// When the emulator cannot be reached.
    pub fn request(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.url());
        let response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            "PATCH" => self
                .agent
                .patch(&url)
                .header("content-type", "application/merge-patch+json")
                .send(body.unwrap_or(Value::Null).to_string()),
            _ => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.unwrap_or(Value::Null).to_string()),
        };
        let mut response = response.expect("the emulator answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn create(&self, path: &str, object: Value) -> Value {
        let (status, answer) = self.request("POST", path, Some(object));
        assert!(status < 300, "creating at {path}: {status} {answer}");
        answer
    }

    /// Creates a node in `zone` of `region`.
    pub fn node(&self, name: &str, region: &str, zone: &str) {
        self.create(
            "/api/v1/nodes",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {
                "topology.kubernetes.io/region": region, "topology.kubernetes.io/zone": zone}}}),
        );
    }

    /// Creates a ReplicaSet controlled by the Deployment `deployment`.
    pub fn replica_set(&self, namespace: &str, name: &str, deployment: &str) {
        self.create(
            &format!("/apis/apps/v1/namespaces/{namespace}/replicasets"),
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
                "name": name, "namespace": namespace, "uid": format!("rs-{name}"),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment,
                    "uid": format!("deploy-{deployment}"), "controller": true}]}}),
        );
    }

    /// Creates a PodDisruptionBudget over pods labelled `selector`, allowing `allowed`
    /// disruptions now.
    pub fn budget(&self, namespace: &str, name: &str, selector: (&str, &str), allowed: u32) {
        self.create(
            &format!("/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets"),
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"selector": {"matchLabels": {selector.0: selector.1}}},
                "status": {"disruptionsAllowed": allowed, "desiredHealthy": 2, "currentHealthy": 2}}),
        );
    }

    /// Creates a pod as its controller would; returns its UID.
    pub fn pod(&self, spec: &PodSpec<'_>) -> String {
        let uid = format!(
            "uid-{}-{}",
            std::process::id(),
            NEXT_UID.fetch_add(1, Ordering::Relaxed)
        );
        let created = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(spec.age_secs);
        let labels: serde_json::Map<String, Value> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect();
        let owners: Vec<Value> = spec
            .owner
            .iter()
            .map(|(kind, name)| {
                json!({"apiVersion": "apps/v1", "kind": kind, "name": name,
                    "uid": format!("owner-{name}"), "controller": true})
            })
            .collect();
        let status = if spec.ready { "True" } else { "False" };
        self.create(
            &format!("/api/v1/namespaces/{}/pods", spec.namespace),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {
                    "name": spec.name, "namespace": spec.namespace, "uid": uid,
                    "creationTimestamp": created.to_string(), "labels": labels,
                    "ownerReferences": owners},
                "spec": {"nodeName": spec.node, "containers": [{"name": "main", "image": "none"}]},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": status}]}}),
        );
        uid
    }

    /// The pod `namespace/name` as the emulator holds it, if it exists.
    pub fn get_pod(&self, namespace: &str, name: &str) -> Option<Value> {
        let (status, pod) = self.request(
            "GET",
            &format!("/api/v1/namespaces/{namespace}/pods/{name}"),
            None,
        );
        (status == 200).then_some(pod)
    }

    /// Deletes the pod `namespace/name`.
    pub fn delete_pod(&self, namespace: &str, name: &str) {
        self.request(
            "DELETE",
            &format!("/api/v1/namespaces/{namespace}/pods/{name}"),
            None,
        );
    }

    /// The Events written in `namespace`.
    pub fn events(&self, namespace: &str) -> Vec<Value> {
        let (_, list) = self.request(
            "GET",
            &format!("/api/v1/namespaces/{namespace}/events"),
            None,
        );
        list["items"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
