//! An experiment's `configuration` and `secrets`, resolved from the file, the environment and
//! `--var`/`--var-file`, as the reference runner resolves them.

use serde_json::{Map, Value};

use crate::load::{Vars, typed};
use crate::validate::Invalid;

/// The `configuration` block resolved: literals, `env` entries (with `default` and
/// `env_var_type`), and `--var` values for keys the block declares. Dynamic entries (a probe
/// as the value) are left as they are, for [`crate::run`] to play.
pub fn configuration(
    experiment: &Map<String, Value>,
    vars: &Vars,
) -> Result<Map<String, Value>, Invalid> {
    let mut out = Map::new();
    let Some(Value::Object(block)) = experiment.get("configuration") else {
        return Ok(out);
    };
    for (key, value) in block {
        if let Some(v) = vars.configuration.get(key) {
            out.insert(key.clone(), v.clone());
            continue;
        }
        let resolved = match value {
            Value::Object(entry) if entry.get("type").and_then(Value::as_str) == Some("env") => {
                env_entry(key, entry, vars)?
            }
            other => other.clone(),
        };
        out.insert(key.clone(), resolved);
    }
    Ok(out)
}

fn env_entry(key: &str, entry: &Map<String, Value>, vars: &Vars) -> Result<Value, Invalid> {
    let env_key = entry
        .get("key")
        .map(crate::pyish::to_str)
        .unwrap_or_default();
    let raw = match vars.env_var(&env_key) {
        Some(v) => Value::String(v),
        None => match entry.get("default") {
            Some(d) => d.clone(),
            None => {
                return Err(Invalid::new(format!(
                    "Configuration makes reference to an environment key that does not exist: {env_key}"
                ))
                .at(format!("configuration.{key}")));
            }
        },
    };
    match (entry.get("env_var_type").and_then(Value::as_str), &raw) {
        (Some(ty), Value::String(s)) => typed(ty, s).map_err(|e| {
            Invalid::new(format!("env_var_type: {e}")).at(format!("configuration.{key}"))
        }),
        _ => Ok(raw),
    }
}

/// The `secrets` block resolved: scopes of literals and `env` entries; a scope given in a
/// variable file replaces the file's.
pub fn secrets(
    experiment: &Map<String, Value>,
    _configuration: &Map<String, Value>,
    vars: &Vars,
) -> Result<Map<String, Value>, Invalid> {
    match experiment.get("secrets") {
        Some(Value::Object(block)) => scope(block, Some(&vars.secrets), vars, "secrets"),
        _ => Ok(Map::new()),
    }
}

fn scope(
    block: &Map<String, Value>,
    given: Option<&Map<String, Value>>,
    vars: &Vars,
    at: &str,
) -> Result<Map<String, Value>, Invalid> {
    let mut out = Map::new();
    for (key, value) in block {
        let here = format!("{at}.{key}");
        let resolved = match value {
            Value::Object(entry) => {
                if let Some(v) = given.and_then(|g| g.get(key)).filter(|v| !v.is_null()) {
                    v.clone()
                } else {
                    match entry.get("type").and_then(Value::as_str) {
                        Some("env") => {
                            let env_key = entry
                                .get("key")
                                .map(crate::pyish::to_str)
                                .unwrap_or_default();
                            match vars.env_var(&env_key) {
                                Some(v) => Value::String(v),
                                None => {
                                    return Err(Invalid::new(format!(
                                        "Secrets make reference to an environment key that does not exist: {env_key}"
                                    ))
                                    .at(here));
                                }
                            }
                        }
                        Some("vault") => {
                            return Err(Invalid::new(
                                "Vault secrets are not supported by Simian: put the value in the environment and use {\"type\": \"env\", \"key\": ...}",
                            )
                            .at(here));
                        }
                        _ => Value::Object(scope(
                            entry,
                            given.and_then(|g| g.get(key)).and_then(Value::as_object),
                            vars,
                            &here,
                        )?),
                    }
                }
            }
            other => other.clone(),
        };
        out.insert(key.clone(), resolved);
    }
    Ok(out)
}
