//! Is this experiment runnable? The reference runner's checks, in its order and with its
//! messages, plus Simian's own (its providers, its stop conditions, Python it cannot run).
//!
//! Each problem names where it is (`method[2]`, `steady-state-hypothesis.probes[0]`), so
//! that a long file is fixed at once; the message itself is the reference's, word for word,
//! so that people and scripts coming from Chaos Toolkit recognise it.

use std::path::Path;

use serde_json::{Map, Value};

use crate::config;
use crate::load::Vars;
use crate::provider::{python, simian};
use crate::pyish::truthy;
use crate::stop;
use crate::tolerance;

/// One reason an experiment cannot run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", at.as_ref().map(|a| format!(" (at {a})")).unwrap_or_default())]
pub struct Invalid {
    /// Where: a path into the document, when the problem is in one place.
    pub at: Option<String>,
    /// What is wrong (the reference runner's words where it has them).
    pub message: String,
}

impl Invalid {
    pub(crate) fn new(message: impl Into<String>) -> Invalid {
        Invalid {
            at: None,
            message: message.into(),
        }
    }

    pub(crate) fn at(mut self, at: impl Into<String>) -> Invalid {
        if self.at.is_none() {
            self.at = Some(at.into());
        }
        self
    }
}

/// Checks `experiment`; the first problem found, as the reference reports it.
pub fn experiment(experiment: &Map<String, Value>, vars: &Vars) -> Result<(), Invalid> {
    if experiment.is_empty() {
        return Err(Invalid::new("an empty experiment is not an experiment"));
    }
    if !experiment.get("title").is_some_and(truthy) {
        return Err(Invalid::new("experiment requires a title"));
    }
    if !experiment.get("description").is_some_and(truthy) {
        return Err(Invalid::new("experiment requires a description"));
    }
    if let Some(Value::Array(tags)) = experiment.get("tags")
        && tags.iter().any(|t| t.as_str().is_none_or(str::is_empty))
    {
        return Err(Invalid::new("experiment tags must be a non-empty string").at("tags"));
    }
    extensions(experiment)?;
    // The reference checks configuration and secrets without --var values: an `env` entry
    // must be satisfiable from the environment (or a .env variable file) or its default.
    let bare = Vars {
        env: vars.env.clone(),
        ..Vars::default()
    };
    let configuration = config::configuration(experiment, &bare)?;
    let secrets = config::secrets(experiment, &configuration, &bare)?;
    // Simian's stop conditions, with the configuration they name substituted.
    let scope = crate::substitute::Scope {
        configuration,
        secrets,
    };
    if let Value::Object(substituted) = scope.substitute(&Value::Object(experiment.clone())) {
        stop::Conditions::of(&substituted)?;
    }
    hypothesis(experiment)?;
    let Some(method) = experiment.get("method") else {
        return Err(Invalid::new(
            "an experiment requires a method, which can be empty for only checking steady state hypothesis ",
        ));
    };
    let names = crate::run::named_activities(experiment);
    for (i, a) in list(method).iter().enumerate() {
        let at = format!("method[{i}]");
        activity(a).map_err(|e| e.at(&at))?;
        reference(a, &names).map_err(|e| e.at(&at))?;
    }
    for (i, a) in list(experiment.get("rollbacks").unwrap_or(&Value::Null))
        .iter()
        .enumerate()
    {
        let at = format!("rollbacks[{i}]");
        activity(a).map_err(|e| e.at(&at))?;
        // The reference finds a rollback's missing `ref` only when it plays the rollbacks,
        // and stops there with a traceback; Simian refuses the file instead.
        reference(a, &names).map_err(|e| e.at(&at))?;
    }
    controls(experiment)?;
    runtime(experiment)?;
    Ok(())
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn reference(a: &Value, names: &Map<String, Value>) -> Result<(), Invalid> {
    if let Some(r) = a.get("ref").and_then(Value::as_str)
        && !r.is_empty()
        && !names.contains_key(r)
    {
        return Err(Invalid::new(format!(
            "referenced activity '{r}' could not be found in the experiment"
        )));
    }
    Ok(())
}

fn extensions(experiment: &Map<String, Value>) -> Result<(), Invalid> {
    let Some(exts) = experiment.get("extensions").filter(|v| truthy(v)) else {
        return Ok(());
    };
    for (i, ext) in list(exts).iter().enumerate() {
        let at = format!("extensions[{i}]");
        let name = ext.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.trim().is_empty() {
            return Err(Invalid::new("All extensions require a non-empty name").at(at));
        }
    }
    Ok(())
}

fn hypothesis(experiment: &Map<String, Value>) -> Result<(), Invalid> {
    let Some(hypo) = experiment
        .get("steady-state-hypothesis")
        .filter(|v| !v.is_null())
    else {
        return Ok(());
    };
    if !hypo.get("title").is_some_and(truthy) {
        return Err(Invalid::new("hypothesis requires a title").at("steady-state-hypothesis"));
    }
    for (i, probe) in list(hypo.get("probes").unwrap_or(&Value::Null))
        .iter()
        .enumerate()
    {
        let at = format!("steady-state-hypothesis.probes[{i}]");
        activity(probe).map_err(|e| e.at(&at))?;
        let Some(t) = probe.get("tolerance") else {
            return Err(Invalid::new("hypothesis probe must have a tolerance entry").at(at));
        };
        tolerance::validate(t).map_err(|e| e.at(format!("{at}.tolerance")))?;
    }
    Ok(())
}

/// Checks one activity (probe or action), wherever it is.
pub fn activity(a: &Value) -> Result<(), Invalid> {
    if !truthy(a) {
        return Err(Invalid::new("empty activity is no activity"));
    }
    if let Some(r) = a.get("ref").filter(|r| !r.is_null()) {
        return match r.as_str() {
            Some(s) if !s.is_empty() => Ok(()),
            _ => Err(Invalid::new(
                "reference to activity must be non-empty strings",
            )),
        };
    }
    let kind = match a.get("type") {
        Some(t) if truthy(t) => t,
        _ => return Err(Invalid::new("an activity must have a type")),
    };
    if !matches!(kind.as_str(), Some("probe" | "action")) {
        return Err(Invalid::new(format!(
            "'{}' is not a supported activity type",
            crate::pyish::to_str(kind)
        )));
    }
    let name = a.get("name").filter(|n| truthy(n));
    let Some(name) = name else {
        return Err(Invalid::new("an activity must have a name"));
    };
    let name = crate::pyish::to_str(name);
    let provider = match a.get("provider") {
        Some(p) if truthy(p) => p,
        _ => return Err(Invalid::new("an activity requires a provider")),
    };
    let provider_type = match provider.get("type") {
        Some(t) if truthy(t) => t,
        _ => return Err(Invalid::new("a provider must have a type")),
    };
    let provider_type = provider_type.as_str().unwrap_or_default();
    if !matches!(provider_type, "python" | "process" | "http" | simian::TYPE) {
        return Err(Invalid::new(format!(
            "unknown provider type '{provider_type}'"
        )));
    }
    if let Some(t) = a.get("timeout").filter(|t| !t.is_null())
        && !(t.is_number() || t.is_boolean())
    {
        return Err(Invalid::new("activity timeout must be a number"));
    }
    if let Some(pauses) = a.get("pauses").filter(|p| !p.is_null()) {
        for when in ["before", "after"] {
            if let Some(Value::String(s)) = pauses.get(when)
                && !(s.starts_with("${") && s.ends_with('}'))
            {
                return Err(Invalid::new(format!(
                    "activity {when} pause must be a number or a pattern to a variable from the configuration or secrets"
                )));
            }
        }
    }
    if let Some(bg) = a.get("background")
        && !bg.is_boolean()
    {
        return Err(Invalid::new("activity background must be a boolean"));
    }
    match provider_type {
        "python" => python::validate(provider, &name),
        "process" => process(provider, &name),
        "http" => http(provider),
        _ => simian::validate(provider, &name),
    }
}

fn process(provider: &Value, name: &str) -> Result<(), Invalid> {
    let raw = match provider.get("path") {
        Some(p) if truthy(p) => crate::pyish::to_str(p),
        _ => return Err(Invalid::new("a process activity must have a path")),
    };
    match crate::provider::process::which(&raw) {
        Some(found) if is_executable(&found) => Ok(()),
        Some(_) => Err(Invalid::new(format!(
            "no access permission to '{raw}', in activity '{name}'"
        ))),
        None => Err(Invalid::new(format!(
            "path '{raw}' cannot be found, in activity '{name}'"
        ))),
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

fn http(provider: &Value) -> Result<(), Invalid> {
    if !provider.get("url").is_some_and(truthy) {
        return Err(Invalid::new("a HTTP activity must have a URL"));
    }
    if let Some(h) = provider.get("headers")
        && truthy(h)
        && !h.is_object()
    {
        return Err(Invalid::new(
            "a HTTP activities expect headers as a mapping",
        ));
    }
    if let Some(s) = provider.get("expected_status")
        && !(s.is_u64() || s.as_array().is_some_and(|l| l.iter().all(Value::is_u64)))
    {
        return Err(Invalid::new(
            "expected_status (a Simian addition) must be a status code or a list of them",
        ));
    }
    Ok(())
}

fn controls(experiment: &Map<String, Value>) -> Result<(), Invalid> {
    if let Some(c) = experiment.get("controls").filter(|c| truthy(c)) {
        let names: Vec<String> = list(c)
            .iter()
            .filter_map(|c| c.get("name").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        return Err(Invalid::new(format!(
            "controls ({}) are Python modules that Simian does not run; remove them, or use Simian's stop conditions (extensions: [{{name: simian, stop_conditions: [...]}}]) for safeguards",
            names.join(", ")
        ))
        .at("controls"));
    }
    Ok(())
}

fn runtime(experiment: &Map<String, Value>) -> Result<(), Invalid> {
    let Some(rt) = experiment.get("runtime").filter(|v| truthy(v)) else {
        return Ok(());
    };
    if let Some(s) = rt.pointer("/rollbacks/strategy") {
        let ok = s
            .as_str()
            .is_some_and(|s| crate::run::RollbackStrategy::parse(s).is_some());
        if !ok {
            return Err(Invalid::new(format!(
                "unknown rollback strategy {s}: one of default, always, never, deviated"
            ))
            .at("runtime.rollbacks.strategy"));
        }
    }
    if let Some(s) = rt.pointer("/hypothesis/strategy") {
        let ok = s
            .as_str()
            .is_some_and(|s| crate::run::HypothesisStrategy::parse(s).is_some());
        if !ok {
            return Err(Invalid::new(format!(
                "unknown hypothesis strategy {s}: one of default, before-method-only, after-method-only, during-method-only, continuously"
            ))
            .at("runtime.hypothesis.strategy"));
        }
    }
    Ok(())
}
