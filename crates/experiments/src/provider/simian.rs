//! The `simian` provider: Simian's own faults as experiment actions.
//!
//! ```json
//! {"type": "action", "name": "slow-db",
//!  "provider": {"type": "simian", "action": "toxic",
//!    "arguments": {"proxy": "postgres", "type": "latency", "attributes": {"latency": 500},
//!                  "duration": 60, "api": "http://127.0.0.1:8474"}}}
//! ```
//!
//! `terminate` kills `count` (or `percent` of the) eligible instances of an app, each through
//! every check of `simian terminate` and recorded in its history (the config's `dry_run`
//! holds unless `dry_run` is given).
//!
//! `pause` freezes `count` (or `percent` of the) eligible instances of an app for `duration`
//! seconds (processes: SIGSTOP; containers: docker pause), leased and undone like a toxic.
//!
//! `gorilla` and `kong` run a Chaos Gorilla or Chaos Kong drill, exactly as `simian gorilla
//! ZONE` and `simian kong REGION --confirm REGION` do (same plan, guards, probes, records and
//! leases); the action lasts as long as the drill, and a stopped run ends the drill early.
//!
//! `toxic` adds a toxic on a proxy of a Toxiproxy-compatible server (`simian proxy`, or
//! Toxiproxy) for `duration` seconds, or until the run ends; `remove_toxic` takes one away.
//! Every toxic is leased (see [`crate::faults`]): it is gone at its deadline even if the
//! runner is killed. The API is `api`, else the configuration's `toxiproxy_url` (or
//! `toxiproxy_host` and `toxiproxy_port`, as the chaostoxi extension reads them), else
//! `http://127.0.0.1:8474`.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Context, Failure};
use crate::substitute::Scope;
use crate::validate::Invalid;

/// The provider's `type`.
pub const TYPE: &str = "simian";

/// How many instances a `terminate` kills.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HowMany {
    /// This many.
    Count(u32),
    /// This share of the eligible instances, rounded up (at least one when any is eligible).
    Percent(f64),
}

/// Kills and pauses through Simian's engine and providers, with their checks and records: the
/// CLI provides it from the configuration.
pub trait Kills: Send + Sync {
    /// Kills `how_many` eligible instances of `target` (`app`, and optionally `account`,
    /// `region`, `stack`, `cluster`), one by one, each through every check; the decisions.
    /// `Err` when nothing could be killed.
    fn terminate(
        &self,
        target: &Map<String, Value>,
        how_many: HowMany,
        dry_run: Option<bool>,
    ) -> Result<Value, String>;

    /// Pauses `how_many` eligible instances of `target` for `duration` (leased in `faults`);
    /// what was paused. `Err` when nothing could be.
    fn pause(
        &self,
        target: &Map<String, Value>,
        how_many: HowMany,
        duration: Duration,
        faults: &crate::faults::Faults,
    ) -> Result<Value, String>;

    /// The Kubernetes provider that natively run `chaosk8s` functions act through: the first
    /// one configured, else one from `$KUBECONFIG` (or the in-cluster service account).
    fn kubernetes(&self) -> Result<std::sync::Arc<simian_providers::KubernetesProvider>, String>;

    /// Runs a `gorilla` or `kong` drill with these (validated) arguments until it ends, or
    /// until `interrupt` trips; the drill's report. `Err` when it was refused, aborted or
    /// failed.
    fn drill(
        &self,
        kind: &str,
        arguments: &Map<String, Value>,
        interrupt: &crate::interrupt::Interrupt,
    ) -> Result<Value, String>;
}

/// Checks a `simian` provider.
pub fn validate(provider: &Value, activity: &str) -> Result<(), Invalid> {
    let action = provider
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let args = match provider.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(Invalid::new(format!(
                "activity '{activity}': the simian provider's arguments are a mapping"
            )));
        }
    };
    let allowed: &[&str] = match action {
        "terminate" => &[
            "app", "account", "region", "stack", "cluster", "count", "percent", "dry_run",
        ],
        "pause" => &[
            "app", "account", "region", "stack", "cluster", "count", "percent", "duration",
        ],
        "gorilla" => &[
            "zone",
            "mode",
            "duration",
            "apps",
            "probes",
            "abort_below",
            "dry_run",
        ],
        "kong" => &[
            "region",
            "confirm",
            "mode",
            "duration",
            "apps",
            "probes",
            "abort_below",
            "dry_run",
        ],
        "toxic" => &[
            "api",
            "proxy",
            "name",
            "type",
            "stream",
            "toxicity",
            "attributes",
            "duration",
        ],
        "remove_toxic" => &["api", "proxy", "name"],
        "" => {
            return Err(Invalid::new(format!(
                "activity '{activity}': the simian provider needs an action (terminate, pause, gorilla, kong, toxic or remove_toxic)"
            )));
        }
        other => {
            return Err(Invalid::new(format!(
                "activity '{activity}': the simian provider has no action {other:?} in this version: it has terminate, pause, gorilla, kong, toxic and remove_toxic"
            )));
        }
    };
    for key in args.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(Invalid::new(format!(
                "activity '{activity}': unknown argument {key:?} for simian {action} (it takes {})",
                allowed.join(", ")
            )));
        }
    }
    let text = |key: &str| {
        args.get(key)
            .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    };
    if action == "terminate" || action == "pause" {
        return fleet_arguments(&args, action, activity);
    }
    if action == "gorilla" || action == "kong" {
        return drill_arguments(&args, action, activity);
    }
    if !text("proxy") {
        return Err(Invalid::new(format!(
            "activity '{activity}': simian {action} needs proxy (the proxy's name)"
        )));
    }
    if action == "remove_toxic" && !text("name") {
        return Err(Invalid::new(format!(
            "activity '{activity}': simian remove_toxic needs name (the toxic's name)"
        )));
    }
    if action == "toxic" {
        let ty = args.get("type").and_then(Value::as_str).unwrap_or_default();
        if !simian_proxy::toxic::TYPES.contains(&ty) && !ty.starts_with("${") {
            return Err(Invalid::new(format!(
                "activity '{activity}': simian toxic type {ty:?} is not one of {}",
                simian_proxy::toxic::TYPES.join(", ")
            )));
        }
        if let Some(s) = args.get("stream").and_then(Value::as_str)
            && !matches!(s, "upstream" | "downstream")
            && !s.starts_with("${")
        {
            return Err(Invalid::new(format!(
                "activity '{activity}': stream {s:?} is upstream or downstream"
            )));
        }
        if let Some(d) = args.get("duration")
            && !d
                .as_f64()
                .is_some_and(|d| d > 0.0 && d <= UNTIL_THE_END_SECS)
            && !d.as_str().is_some_and(|s| s.starts_with("${"))
        {
            return Err(Invalid::new(format!(
                "activity '{activity}': duration must be a number of seconds above 0 and at most {UNTIL_THE_END_SECS}"
            )));
        }
    }
    Ok(())
}

const UNTIL_THE_END_SECS: f64 = 3600.0;

/// The Toxiproxy API an activity talks to.
pub fn api(args: &Value, scope: &Scope) -> String {
    if let Some(a) = args.get("api").and_then(Value::as_str) {
        return a.to_string();
    }
    let c = &scope.configuration;
    if let Some(url) = c.get("toxiproxy_url").filter(|v| crate::pyish::truthy(v)) {
        return crate::pyish::to_str(url);
    }
    if let Some(host) = c.get("toxiproxy_host").filter(|v| crate::pyish::truthy(v)) {
        let port = c
            .get("toxiproxy_port")
            .filter(|v| crate::pyish::truthy(v))
            .map(crate::pyish::to_str)
            .unwrap_or_else(|| "8474".into());
        return format!("http://{}:{port}", crate::pyish::to_str(host));
    }
    "http://127.0.0.1:8474".to_string()
}

/// The toxic as the Toxiproxy API takes it.
pub fn toxic(name: &str, ty: &str, stream: &str, toxicity: &Value, attributes: &Value) -> Value {
    json!({
        "name": name,
        "type": ty,
        "stream": stream,
        "toxicity": toxicity,
        "attributes": if attributes.is_object() { attributes.clone() } else { json!({}) },
    })
}

/// Runs a `simian` action.
pub fn run(activity: &Value, provider: &Value, cx: &Context<'_>) -> Result<Value, Failure> {
    if let Some(action @ ("terminate" | "pause" | "gorilla" | "kong")) =
        provider.get("action").and_then(Value::as_str)
    {
        return fleet(action, provider, cx);
    }
    let Some(faults) = cx.faults else {
        return Err(Failure::Failed(
            "Simian's faults are recorded in its store: run with a simian.toml (--config FILE)"
                .into(),
        ));
    };
    let args = cx
        .scope
        .substitute(provider.get("arguments").unwrap_or(&Value::Null));
    let api = api(&args, cx.scope);
    let proxy = args["proxy"].as_str().unwrap_or_default();
    match provider.get("action").and_then(Value::as_str) {
        Some("toxic") => {
            let name = args
                .get("name")
                .and_then(Value::as_str)
                .or_else(|| activity.get("name").and_then(Value::as_str))
                .unwrap_or("simian");
            let t = toxic(
                name,
                args["type"].as_str().unwrap_or_default(),
                args.get("stream")
                    .and_then(Value::as_str)
                    .unwrap_or("downstream"),
                args.get("toxicity").unwrap_or(&json!(1.0)),
                args.get("attributes").unwrap_or(&Value::Null),
            );
            let duration = args
                .get("duration")
                .and_then(crate::pyish::number)
                .filter(|d| *d > 0.0)
                .map(|d| Duration::from_secs_f64(d.min(UNTIL_THE_END_SECS)));
            faults
                .add_toxic(&api, proxy, &t, duration)
                .map_err(Failure::Failed)
        }
        Some("remove_toxic") => faults
            .remove_toxic(&api, proxy, args["name"].as_str().unwrap_or_default())
            .map_err(Failure::Failed),
        other => Err(Failure::Failed(format!("no simian action {other:?}"))),
    }
}

fn fleet_arguments(args: &Map<String, Value>, action: &str, activity: &str) -> Result<(), Invalid> {
    let bad = |what: &str| Err(Invalid::new(format!("activity '{activity}': {what}")));
    if action == "pause"
        && !args
            .get("duration")
            .and_then(Value::as_f64)
            .is_some_and(|d| d > 0.0 && d <= UNTIL_THE_END_SECS)
    {
        return bad("simian pause needs duration, a number of seconds above 0 and at most 3600");
    }
    if args
        .get("app")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return bad(&format!(
            "simian {action} needs app (a configured app's name)"
        ));
    }
    match (args.get("count"), args.get("percent")) {
        (Some(_), Some(_)) => {
            return bad(&format!("simian {action} takes count or percent, not both"));
        }
        (Some(c), None) if !c.as_u64().is_some_and(|c| (1..=10_000).contains(&c)) => {
            return bad("count must be a whole number from 1 to 10000");
        }
        (None, Some(p)) if !p.as_f64().is_some_and(|p| p > 0.0 && p <= 100.0) => {
            return bad("percent must be a number above 0 and at most 100");
        }
        _ => {}
    }
    if args.get("dry_run").is_some_and(|d| !d.is_boolean()) {
        return bad("dry_run must be true or false");
    }
    Ok(())
}

fn fleet(action: &str, provider: &Value, cx: &Context<'_>) -> Result<Value, Failure> {
    let (Some(kills), Some(faults)) = (cx.kills, cx.faults) else {
        return Err(Failure::Failed(format!(
            "simian {action} needs Simian's configuration: run with a simian.toml (--config FILE)"
        )));
    };
    let args = match cx
        .scope
        .substitute(provider.get("arguments").unwrap_or(&Value::Null))
    {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let how_many = match (
        args.get("count").and_then(Value::as_u64),
        args.get("percent").and_then(Value::as_f64),
    ) {
        (_, Some(p)) => HowMany::Percent(p),
        (Some(c), None) => HowMany::Count(u32::try_from(c).unwrap_or(1)),
        (None, None) => HowMany::Count(1),
    };
    let target: Map<String, Value> = args
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "app" | "account" | "region" | "stack" | "cluster"
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if action == "gorilla" || action == "kong" {
        return kills
            .drill(action, &args, cx.interrupt)
            .map_err(Failure::Failed);
    }
    let result = if action == "pause" {
        let seconds = args.get("duration").and_then(Value::as_f64).unwrap_or(1.0);
        let duration = Duration::from_secs_f64(seconds.clamp(0.001, UNTIL_THE_END_SECS));
        kills.pause(&target, how_many, duration, faults)
    } else {
        kills.terminate(
            &target,
            how_many,
            args.get("dry_run").and_then(Value::as_bool),
        )
    };
    result.map_err(Failure::Failed)
}

fn drill_arguments(args: &Map<String, Value>, action: &str, activity: &str) -> Result<(), Invalid> {
    let bad = |what: String| Err(Invalid::new(format!("activity '{activity}': {what}")));
    let scope = if action == "gorilla" {
        "zone"
    } else {
        "region"
    };
    let Some(target) = args
        .get(scope)
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return bad(format!(
            "simian {action} needs {scope} (the {scope} that goes dark)"
        ));
    };
    if action == "kong" && args.get("confirm").and_then(Value::as_str) != Some(target) {
        return bad(format!(
            "Chaos Kong takes a whole region down: repeat its name as confirm (\"confirm\": {target:?})"
        ));
    }
    let mode = args
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or("terminate");
    if !matches!(mode, "terminate" | "pause" | "isolate") {
        return bad(format!("mode {mode:?} is terminate, pause or isolate"));
    }
    match args.get("duration") {
        None if mode != "terminate" => {
            return bad(format!(
                "mode {mode} needs duration (seconds the {scope} stays dark)"
            ));
        }
        Some(d)
            if !d
                .as_f64()
                .is_some_and(|d| d > 0.0 && d <= UNTIL_THE_END_SECS) =>
        {
            return bad("duration must be a number of seconds above 0 and at most 3600".into());
        }
        _ => {}
    }
    for list in ["apps", "probes"] {
        if let Some(v) = args.get(list)
            && !v.as_array().is_some_and(|l| l.iter().all(Value::is_string))
        {
            return bad(format!("{list} must be a list of strings"));
        }
    }
    if let Some(p) = args.get("abort_below")
        && !p.as_f64().is_some_and(|p| (0.0..=100.0).contains(&p))
    {
        return bad("abort_below must be a percentage from 0 to 100".into());
    }
    if args.get("dry_run").is_some_and(|d| !d.is_boolean()) {
        return bad("dry_run must be true or false".into());
    }
    Ok(())
}
