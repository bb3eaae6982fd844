//! Tolerances: is a steady-state probe's output within what the hypothesis allows?
//!
//! The forms and their semantics are the reference runner's, quirks included, because a
//! verdict that differs from Chaos Toolkit's on the same file would be a bug report: an
//! integer or a list compares an HTTP or process output's `status`; a two-element list is an
//! inclusive range for any other output; `regex` searches, `jsonpath` matches, `range` is
//! numeric and inclusive, and a `probe` tolerance passes when the probe, given the output as
//! its `value` argument, returns something true.

use jsonpath_rust::JsonPath as _;
use serde_json::Value;

use crate::pyish;
use crate::substitute::Scope;
use crate::validate::Invalid;

/// Checks a tolerance's shape, with the reference's messages.
pub fn validate(t: &Value) -> Result<(), Invalid> {
    let Value::Object(map) = t else {
        return match t {
            Value::Bool(_) | Value::String(_) | Value::Array(_) => Ok(()),
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(()),
            _ => Err(Invalid::new(
                "hypothesis probe tolerance must either be an integer, a string, a boolean or a pair of values for boundaries. It can also be a dictionary which is a probe activity definition that takes an argument called `value` with the value of the probe itself to be validated",
            )),
        };
    };
    match map.get("type").and_then(Value::as_str) {
        Some("probe") => crate::validate::activity(t),
        Some("regex") => {
            let Some(pattern) = map.get("pattern") else {
                return Err(Invalid::new(
                    "hypothesis regex probe tolerance must have a `pattern` key",
                ));
            };
            let Some(p) = pattern.as_str() else {
                return Err(Invalid::new(format!(
                    "hypothesis probe tolerance pattern {} has an invalid type",
                    pyish::to_str(pattern)
                )));
            };
            regex::Regex::new(p).map(|_| ()).map_err(|e| {
                Invalid::new(format!(
                    "hypothesis probe tolerance pattern {p} seems invalid: {}",
                    e.to_string().lines().last().unwrap_or_default().trim()
                ))
            })
        }
        Some("jsonpath") => {
            let Some(path) = map.get("path") else {
                return Err(Invalid::new(
                    "hypothesis jsonpath probe tolerance must have a `path` key",
                ));
            };
            let Some(p) = path.as_str() else {
                return Err(Invalid::new(format!(
                    "hypothesis probe tolerance JSON path {} has an invalid type",
                    pyish::to_str(path)
                )));
            };
            if p.trim().is_empty() {
                return Err(Invalid::new(
                    "hypothesis probe tolerance JSON path cannot be empty",
                ));
            }
            Value::Null.query(p.trim()).map(|_| ()).map_err(|_| {
                Invalid::new(format!(
                    "hypothesis probe tolerance JSON path {} is invalid",
                    p.trim()
                ))
            })
        }
        Some("range") => {
            let Some(range) = map.get("range") else {
                return Err(Invalid::new(
                    "hypothesis range probe tolerance must have a `range` key",
                ));
            };
            let Some(pair) = range.as_array() else {
                return Err(Invalid::new("hypothesis range must be a sequence"));
            };
            if pair.len() != 2 {
                return Err(Invalid::new(
                    "hypothesis range sequence must be made of two values",
                ));
            }
            if pyish::number(&pair[0]).is_none() {
                return Err(Invalid::new(
                    "hypothesis range lower boundary must be a number",
                ));
            }
            if pyish::number(&pair[1]).is_none() {
                return Err(Invalid::new(
                    "hypothesis range upper boundary must be a number",
                ));
            }
            Ok(())
        }
        _ => Err(Invalid::new(format!(
            "hypothesis probe tolerance type '{}' is unsupported",
            map.get("type").map(pyish::to_str).unwrap_or("None".into())
        ))),
    }
}

/// Runs a tolerance probe (the `probe` form) with its `value` argument set.
pub trait ProbeRunner {
    /// Runs `probe`; its output, or `Err` when it failed.
    fn run_probe(&self, probe: &Value) -> Result<Value, String>;
}

/// Whether `output` is within `tolerance`. A probe form whose provider has no `arguments`
/// mapping to receive the value is not met (the reference stops with a traceback there).
pub fn within(tolerance: &Value, output: &Value, scope: &Scope, runner: &dyn ProbeRunner) -> bool {
    match tolerance {
        Value::Bool(b) => pyish::eq(output, &Value::Bool(*b)),
        // A string is substituted first; `${x}` may become a number or a list, which is
        // then checked as that form.
        Value::String(s) => match scope.substitute_str(s) {
            Value::String(s) => output.as_str() == Some(s.as_str()),
            other => within(&other, output, scope, runner),
        },
        Value::Number(_) => match output.get("status") {
            Some(status) if output.is_object() => pyish::eq(status, tolerance),
            _ => pyish::eq(output, tolerance),
        },
        Value::Array(items) => {
            if let (true, Some(status)) = (output.is_object(), output.get("status")) {
                return items.iter().any(|i| pyish::eq(i, status));
            }
            if items.len() == 2 {
                return match (
                    pyish::number(&items[0]),
                    pyish::number(output),
                    pyish::number(&items[1]),
                ) {
                    (Some(lo), Some(v), Some(hi)) => lo <= v && v <= hi,
                    _ => match (&items[0], output, &items[1]) {
                        (Value::String(lo), Value::String(v), Value::String(hi)) => {
                            lo <= v && v <= hi
                        }
                        _ => false,
                    },
                };
            }
            items.iter().any(|i| pyish::eq(i, output))
        }
        Value::Object(map) => match map.get("type").and_then(Value::as_str) {
            Some("probe") => {
                let mut probe = tolerance.clone();
                match probe.pointer_mut("/provider/arguments") {
                    Some(Value::Object(args)) => {
                        args.insert("value".to_string(), output.clone());
                    }
                    _ => return false,
                }
                runner.run_probe(&probe).is_ok_and(|v| pyish::truthy(&v))
            }
            Some("regex") => {
                let target = targeted(map, output);
                let pattern = scope.substitute_text(
                    map.get("pattern")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                );
                match (regex::Regex::new(&pattern), target.as_str()) {
                    (Ok(rx), Some(text)) => rx.is_match(text),
                    _ => false,
                }
            }
            Some("jsonpath") => jsonpath(map, output, scope),
            Some("range") => {
                let value = targeted(map, output);
                let number = match value {
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    Value::Number(n) => n.as_f64(),
                    Value::Bool(b) => Some(f64::from(u8::from(*b))),
                    _ => None,
                };
                let range = map.get("range").and_then(Value::as_array);
                match (number, range) {
                    (Some(v), Some(r)) if r.len() == 2 => {
                        match (pyish::number(&r[0]), pyish::number(&r[1])) {
                            (Some(lo), Some(hi)) => lo <= v && v <= hi,
                            _ => false,
                        }
                    }
                    _ => false,
                }
            }
            _ => false,
        },
        Value::Null => false,
    }
}

/// The part of the output a `target` names (`body`, `stdout`, ...), or the whole output.
fn targeted<'a>(map: &serde_json::Map<String, Value>, output: &'a Value) -> &'a Value {
    match map.get("target").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => output.get(t).unwrap_or(output),
        _ => output,
    }
}

fn jsonpath(map: &serde_json::Map<String, Value>, output: &Value, scope: &Scope) -> bool {
    let path = scope.substitute_text(map.get("path").and_then(Value::as_str).unwrap_or_default());
    let target = targeted(map, output);
    let parsed;
    let doc = match target {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v) => {
                parsed = v;
                &parsed
            }
            Err(_) => target,
        },
        other => other,
    };
    let Ok(found) = doc.query(path.trim()) else {
        return false;
    };
    let values: Vec<Value> = found.into_iter().cloned().collect();
    let mut result = !values.is_empty();
    if let Some(count) = map.get("count").filter(|c| !c.is_null()) {
        result = pyish::eq(&Value::from(values.len()), count);
    }
    if let Some(expect) = map.get("expect") {
        let expect = scope.substitute(expect);
        result = match expect {
            Value::Array(list) => pyish::eq(&Value::Array(values), &Value::Array(list)),
            one => pyish::eq(&Value::Array(values), &Value::Array(vec![one])),
        };
    }
    result
}
