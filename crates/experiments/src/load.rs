//! Reading experiment files and variable files, with errors that point at the line.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::pyish;

/// A file that could not be read as an experiment (or a variable file).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read at all.
    #[error("{path}: cannot read it: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid JSON or YAML.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What the parser found.
        message: String,
    },
    /// The file is valid but not an experiment document, or has an unknown extension.
    #[error("{path}: {message}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Reads an experiment from a `.json`, `.yaml` or `.yml` file, as the reference does (by the
/// extension).
pub fn experiment(path: &Path) -> Result<Map<String, Value>, LoadError> {
    let value = document(path)?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(LoadError::Shape {
            path: path.to_path_buf(),
            message: format!(
                "an experiment is a mapping of keys (title, description, method, ...), not {}",
                kind(&other)
            ),
        }),
    }
}

/// Reads a JSON or YAML document, chosen by the file's extension.
pub fn document(path: &Path) -> Result<Value, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    match extension(path).as_deref() {
        Some("json") => serde_json::from_str(&text).map_err(|e| LoadError::Syntax {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        }),
        Some("yaml" | "yml") => yaml(path, &text),
        _ => Err(LoadError::Shape {
            path: path.to_path_buf(),
            message: "only files with json, yaml or yml extensions are supported".to_string(),
        }),
    }
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

fn yaml(path: &Path, text: &str) -> Result<Value, LoadError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_saphyr::from_str::<Value>(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line() as usize, l.column() as usize))
            .unwrap_or((0, 0));
        LoadError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: first_line(&e.to_string()),
        }
    })
}

/// serde-saphyr writes `error: line L column C: what` and then a picture of the line: the
/// error says the position up front, so only `what` is kept.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line.split_once(": ") {
        Some((position, what)) if position.starts_with("line ") => what.to_string(),
        _ => line.to_string(),
    }
}

/// serde_json ends its messages with " at line L column C"; the error says it up front.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "an empty document",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Values given on the command line and in variable files, over the experiment's own.
#[derive(Clone, Debug, Default)]
pub struct Vars {
    /// Configuration values (`--var`, and `configuration:` of a variable file).
    pub configuration: Map<String, Value>,
    /// Secret scopes (`secrets:` of a variable file).
    pub secrets: Map<String, Value>,
    /// Environment variables from `.env` files: seen by `env` configuration and secrets and
    /// by every process the experiment starts (never set in Simian's own environment).
    pub env: Vec<(String, String)>,
}

impl Vars {
    /// Adds a variable file: JSON or YAML with `configuration` and `secrets` sections, or any
    /// other file as `KEY=VALUE` lines of environment variables.
    pub fn add_file(&mut self, path: &Path) -> Result<(), LoadError> {
        let structured = matches!(extension(path).as_deref(), Some("json" | "yaml" | "yml"));
        if structured {
            let doc = document(path)?;
            if pyish::truthy(&doc) {
                let Value::Object(map) = doc else {
                    return Err(LoadError::Shape {
                        path: path.to_path_buf(),
                        message: "a variable file is a mapping with `configuration` and `secrets` sections".to_string(),
                    });
                };
                for (section, target) in [
                    ("configuration", &mut self.configuration),
                    ("secrets", &mut self.secrets),
                ] {
                    match map.get(section) {
                        None | Some(Value::Null) => {}
                        Some(Value::Object(values)) => target.extend(values.clone()),
                        Some(_) => {
                            return Err(LoadError::Shape {
                                path: path.to_path_buf(),
                                message: format!(
                                    "`{section}` must be a mapping of names to values"
                                ),
                            });
                        }
                    }
                }
                return Ok(());
            }
        }
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(LoadError::Syntax {
                    path: path.to_path_buf(),
                    line: n + 1,
                    column: 1,
                    message: format!("{line:?} is not KEY=VALUE"),
                });
            };
            self.env.push((k.to_string(), v.to_string()));
        }
        Ok(())
    }

    /// Adds `--var NAME[:TYPE]=VALUE` (types: str, int, float, bool, json, bytes).
    pub fn add_var(&mut self, spec: &str) -> Result<(), String> {
        let Some((key, raw)) = spec.split_once('=') else {
            return Err(format!(
                "--var {spec:?}: the format is NAME=VALUE or NAME:TYPE=VALUE"
            ));
        };
        let (name, value) = match key.rsplit_once(':') {
            Some((name, ty)) => (
                name,
                typed(ty, raw).map_err(|e| format!("--var {spec:?}: {e}"))?,
            ),
            None => (key, Value::String(raw.to_string())),
        };
        self.configuration.insert(name.to_string(), value);
        Ok(())
    }

    /// The value of environment variable `key`, from `.env` files first, then the process.
    pub fn env_var(&self, key: &str) -> Option<String> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(key).ok())
    }
}

/// A string converted to the named type, as `--var NAME:TYPE=VALUE` and `env_var_type` do.
pub fn typed(ty: &str, raw: &str) -> Result<Value, String> {
    match ty {
        "str" | "string" | "bytes" => Ok(Value::String(raw.to_string())),
        "int" | "integer" => raw
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("{raw:?} is not an integer")),
        "float" | "number" => raw
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("{raw:?} is not a number")),
        "bool" => Ok(Value::Bool(!matches!(
            raw.to_ascii_lowercase().as_str(),
            "false" | "0" | "no"
        ))),
        "json" if raw.is_empty() => Ok(Value::String(String::new())),
        "json" => serde_json::from_str(raw).map_err(|e| format!("{raw:?} is not JSON: {e}")),
        other => Err(format!(
            "unknown type {other:?}: the types are bool, str, int, float, bytes and json"
        )),
    }
}
