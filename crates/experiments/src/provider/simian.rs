//! The `simian` provider: Simian's own faults as experiment actions.
//!
//! ```json
//! {"type": "action", "name": "slow-db",
//!  "provider": {"type": "simian", "action": "toxic",
//!    "arguments": {"proxy": "postgres", "type": "latency", "attributes": {"latency": 500},
//!                  "duration": 60, "api": "http://127.0.0.1:8474"}}}
//! ```
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

/// The toxic types a Toxiproxy-compatible server knows.
pub const TOXIC_TYPES: &[&str] = &[
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
];

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
                "activity '{activity}': the simian provider needs an action (toxic or remove_toxic)"
            )));
        }
        other => {
            return Err(Invalid::new(format!(
                "activity '{activity}': the simian provider has no action {other:?} in this version: it has toxic and remove_toxic"
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
        if !TOXIC_TYPES.contains(&ty) && !ty.starts_with("${") {
            return Err(Invalid::new(format!(
                "activity '{activity}': simian toxic type {ty:?} is not one of {}",
                TOXIC_TYPES.join(", ")
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
